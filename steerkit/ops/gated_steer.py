"""The ``gated_steer`` op: validation, the torch.library custom ops, autograd and dispatch.

Two custom ops carry the work so that torch.compile traces through forward and backward alike:

* ``steerkit::gated_steer_fwd`` -> (out, gates, norms): one backend kernel over the rows;
* ``steerkit::gated_steer_bwd_rows`` -> (dh, dc, ra): the row-local half of the backward.

The reductions over rows (gradients of theta, gate_w, gate_b and a per-attribute strength) are
done here, once for every backend, as skinny matrix products over grad_out and h
(see ``steerkit.reference.gated_steer_backward_rows`` for the algebra).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.autograd import forward_ad as _forward_ad

from .. import backends
from ..reference import accumulate_dtype

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


_is_compiling = getattr(torch.compiler, "is_compiling", None)
_functorch_level = getattr(getattr(torch._C, "_functorch", None), "maybe_current_level", None)


def compiling() -> bool:
    """Whether torch.compile or torch.export is tracing this call."""
    return _is_compiling is not None and _is_compiling()


def _transformed() -> bool:
    """Whether a torch.func transform (vmap, grad, jvp) or forward-mode AD is active: their tensors look
    plain, and a kernel handed their data would silently drop the batch dimension or the tangent, where
    the op raises. Where torch has moved these internals, assume a transform (the op is always right)."""
    level = getattr(_forward_ad, "_current_level", None)
    if level is None or _functorch_level is None:
        return True
    return level >= 0 or _functorch_level() is not None


def direct(t: torch.Tensor) -> bool:
    """Whether an op on ``t`` calls its backend kernel directly instead of through its torch.library op:
    eagerly, on a plain tensor on a real device. The op's Python dispatch cost 20 µs of a 49 µs call here
    (CPU, N=1; 55 µs on a busy machine), more than the kernel at decoding sizes; tracing (torch.compile, export), tensor subclasses
    (fake, functional, distributed), meta tensors and torch.func transforms need the op. Both routes run
    the same backend function."""
    return type(t) is torch.Tensor and t.device.type != "meta" and not compiling() and not _transformed()


def _fwd_impl(h, theta, gate_w, gate_b, strength, norm_preserve):
    be = backends.select("gated_steer", h, theta.shape[0])
    return be.gated_steer_forward(h, theta, gate_w, gate_b, strength, norm_preserve)


def _bwd_rows_impl(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve):
    be = backends.select("gated_steer", h, theta.shape[0])
    return be.gated_steer_backward_rows(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve)


@torch.library.custom_op("steerkit::gated_steer_fwd", mutates_args=())
def _gated_steer_fwd(
    h: torch.Tensor,
    theta: torch.Tensor,
    gate_w: Optional[torch.Tensor],
    gate_b: Optional[torch.Tensor],
    strength: torch.Tensor,
    norm_preserve: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _fwd_impl(h, theta, gate_w, gate_b, strength, norm_preserve)


@_gated_steer_fwd.register_fake
def _(h, theta, gate_w, gate_b, strength, norm_preserve):
    n, k = h.shape[0], theta.shape[0]
    acc = accumulate_dtype(h.dtype)
    return h.new_empty(h.shape), h.new_empty((n, k), dtype=acc), h.new_empty((n, 2), dtype=acc)


@torch.library.custom_op("steerkit::gated_steer_bwd_rows", mutates_args=())
def _gated_steer_bwd_rows(
    grad: torch.Tensor,
    h: torch.Tensor,
    theta: torch.Tensor,
    gate_w: Optional[torch.Tensor],
    strength: torch.Tensor,
    gates: torch.Tensor,
    norms: torch.Tensor,
    gram: torch.Tensor,
    norm_preserve: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _bwd_rows_impl(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve)


@_gated_steer_bwd_rows.register_fake
def _(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve):
    n, k = h.shape[0], theta.shape[0]
    acc = accumulate_dtype(h.dtype)
    return h.new_empty(h.shape), h.new_empty((n, k), dtype=acc), h.new_empty((n, 2), dtype=acc)


def _setup_context(ctx, inputs, output):
    h, theta, gate_w, gate_b, strength, norm_preserve = inputs
    _, gates, norms = output
    ctx.save_for_backward(h, theta, gate_w, strength, gates, norms)
    ctx.norm_preserve = norm_preserve
    ctx.has_b = gate_b is not None


_MM_CHUNK_ELEMS = 1 << 25  # rows of a 16-bit x upcast at a time: bounds the float32 copy to 128 MiB


def _mm_t(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """coefᵀ @ x for coef [N,M] (accumulation dtype) and x [N,D], accumulated in coef's dtype.

    A 16-bit x is upcast a block of rows at a time rather than rounding coef to 16 bits: these sums
    over rows cancel, and 16-bit coefficients cost ~4x the error of the stored result."""
    if x.dtype == coef.dtype:
        return coef.T @ x
    rows = max(1, _MM_CHUNK_ELEMS // max(1, x.shape[1]))
    out = coef.new_zeros((coef.shape[1], x.shape[1]))
    for i in range(0, x.shape[0], rows):
        out.addmm_(coef[i:i + rows].T, x[i:i + rows].to(coef.dtype))
    return out


def _backward(ctx, grad_out, grad_gates, grad_norms):
    h, theta, gate_w, strength, gates, norms = ctx.saved_tensors
    need_h, need_theta, need_w, need_b, need_s, _ = ctx.needs_input_grad
    if grad_out.stride(-1) != 1:
        grad_out = grad_out.contiguous()
    acc = gates.dtype
    theta_acc = theta.to(acc)
    gram = theta_acc @ theta_acc.T
    bwd_rows = _bwd_rows_impl if direct(h) else _gated_steer_bwd_rows
    dh, dc, ra = bwd_rows(grad_out, h, theta, gate_w, strength, gates, norms, gram, ctx.norm_preserve)
    s = strength.to(acc)
    c = s * gates
    dg = dc * s
    if grad_gates is not None:
        dg = dg + grad_gates.to(acc)
    dz = dg * gates * (1 - gates) if gate_w is not None else None
    if grad_gates is not None and gate_w is not None and need_h:
        # the kernel's dh covers gates reached through out; add gates used directly by the caller
        dh = dh + (grad_gates.to(acc) * gates * (1 - gates)).to(h.dtype) @ gate_w
    d_theta = d_w = d_b = d_s = None
    if need_theta or need_w:
        # d_theta = Aᵀ grad - Bᵀ h - (Bᵀ c) theta with A = c r, B = c r a; d_w = dzᵀ h.
        coef_a = c * ra[:, 0:1]
        coef_b = coef_a * ra[:, 1:2]
        k = theta.shape[0]
        h_terms = []
        if need_theta and ctx.norm_preserve:
            h_terms.append(coef_b)
        if need_w and dz is not None:
            h_terms.append(dz)
        from_h = _mm_t(torch.cat(h_terms, dim=1), h) if h_terms else None
        if need_theta:
            d_theta = _mm_t(coef_a, grad_out)
            if ctx.norm_preserve:
                d_theta = d_theta - from_h[:k] - (coef_b.T @ c) @ theta_acc
            d_theta = d_theta.to(theta.dtype)
        if need_w and dz is not None:
            d_w = from_h[-k:].to(gate_w.dtype)
    if need_b and dz is not None:
        d_b = dz.sum(0)
    if need_s:
        d_s = dc * gates
        if strength.dim() == 1:
            d_s = d_s.sum(0)
        d_s = d_s.to(strength.dtype)
    return (dh if need_h else None), d_theta, d_w, d_b, d_s, None


_gated_steer_fwd.register_autograd(_backward, setup_context=_setup_context)


class _GatedSteerFn(torch.autograd.Function):
    """The direct route's autograd: the op's own setup_context and backward around the kernel call."""

    @staticmethod
    def forward(ctx, h, theta, gate_w, gate_b, strength, norm_preserve):
        out = _fwd_impl(h, theta, gate_w, gate_b, strength, norm_preserve)
        _setup_context(ctx, (h, theta, gate_w, gate_b, strength, norm_preserve), out)
        ctx.mark_non_differentiable(out[2])
        return out

    @staticmethod
    def backward(ctx, grad_out, grad_gates, grad_norms):
        return _backward(ctx, grad_out, grad_gates, grad_norms)


def gated_steer_rows(h2, theta, gate_w, gate_b, s, norm_preserve: bool):
    """(out, gates, norms) for rows ``h2`` [N, D] and checked arguments: the backend directly when
    ``direct``, else the custom op; differentiable either way."""
    if not direct(h2):
        return _gated_steer_fwd(h2, theta, gate_w, gate_b, s, norm_preserve)
    if needs_grad(h2, theta, gate_w, gate_b, s):
        return _GatedSteerFn.apply(h2, theta, gate_w, gate_b, s, norm_preserve)
    return _fwd_impl(h2, theta, gate_w, gate_b, s, norm_preserve)


def _fail(arg: str, expected: str, got: str, op: str = "gated_steer") -> None:
    raise ValueError(f"{op}: {arg} must be {expected}, got {got}")


def _check_param(name: str, t, shape: tuple[int, ...], h: torch.Tensor, same_dtype: bool, op: str) -> None:
    if not isinstance(t, torch.Tensor):
        _fail(name, "a torch.Tensor", type(t).__name__, op)
    if tuple(t.shape) != shape:
        _fail(name, f"of shape {list(shape)}", f"{list(t.shape)}", op)
    if t.device != h.device:
        _fail(name, f"on h's device {h.device}", f"{t.device}", op)
    if same_dtype and t.dtype != h.dtype:
        _fail(name, f"of h's dtype {h.dtype}", f"{t.dtype}", op)
    if not same_dtype and not t.dtype.is_floating_point:
        _fail(name, "a floating-point tensor", f"{t.dtype}", op)


def _skip_host_checks() -> bool:
    """Value checks need a host sync: skip them while tracing or capturing a CUDA graph."""
    if compiling():
        return True
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def _refuse_forward_ad(op: str, *tensors) -> None:
    """Forward-mode AD (jvp, dual tensors) has no formula in these ops, and torch would return their
    output without a tangent: a silent wrong answer, refused instead."""
    if getattr(_forward_ad, "_current_level", -1) < 0:
        return
    if any(isinstance(t, torch.Tensor) and _forward_ad.unpack_dual(t).tangent is not None for t in tensors):
        raise ValueError(f"{op}: forward-mode AD (dual tensors, jvp) is not supported; use reverse mode "
                         "(backward, torch.autograd.grad)")


def check_steer_args(h, theta, gate_w, gate_b, strength, check_finite: bool, op: str = "gated_steer"):
    """Validates the steering arguments of an op whose activation is ``h`` [..., D] and brings them to
    the form every kernel takes: ``(theta, gate_w, gate_b, strength)`` contiguous, gate_b and
    strength in the accumulation dtype, strength [K] or [rows, K]. Names the argument at fault."""
    if not isinstance(h, torch.Tensor):
        _fail("h", "a torch.Tensor", type(h).__name__, op)
    if h.dtype not in _FLOAT_DTYPES:
        _fail("h", "float32, float16, bfloat16 or float64", f"{h.dtype}", op)
    if h.dim() < 1 or h.shape[-1] < 1:
        _fail("h", "a tensor [..., D] with D >= 1", f"shape {list(h.shape)}", op)
    d = h.shape[-1]
    if not isinstance(theta, torch.Tensor) or theta.dim() != 2 or theta.shape[0] < 1:
        _fail("theta", "a [K, D] tensor with K >= 1", f"{getattr(theta, 'shape', type(theta).__name__)}", op)
    k = theta.shape[0]
    _check_param("theta", theta, (k, d), h, True, op)
    if gate_w is not None:
        _check_param("gate_w", gate_w, (k, d), h, True, op)
    if gate_b is not None:
        if gate_w is None:
            _fail("gate_b", "None when gate_w is None (gate-free steering has no bias)", "a tensor", op)
        _check_param("gate_b", gate_b, (k,), h, False, op)
    _refuse_forward_ad(op, h, theta, gate_w, gate_b, strength)
    lead = tuple(h.shape[:-1])
    acc = accumulate_dtype(h.dtype)
    if isinstance(strength, torch.Tensor):
        if strength.shape not in (torch.Size([k]), torch.Size([]), torch.Size(lead + (k,))):
            _fail("strength", f"a float, a [K={k}] tensor or a per-row {list(lead) + [k]} tensor",
                  f"shape {list(strength.shape)}", op)
        _check_param("strength", strength, tuple(strength.shape), h, False, op)
        s = strength.to(acc)
        s = s.expand(k) if s.dim() == 0 else (s.reshape(-1, k) if s.shape != torch.Size([k]) else s)
    elif isinstance(strength, (int, float)):
        s = torch.full((k,), float(strength), dtype=acc, device=h.device)
    else:
        _fail("strength", "a float or a tensor", type(strength).__name__, op)
    if check_finite and not _skip_host_checks():
        named = [(name, t) for name, t in (("theta", theta), ("gate_w", gate_w), ("gate_b", gate_b), ("strength", s))
                 if t is not None]
        finite = torch.stack([torch.isfinite(t).all() for _, t in named]).tolist()  # one host sync, not four
        for (name, _), ok in zip(named, finite):
            if not ok:
                raise ValueError(f"{op}: {name} contains NaN or Inf")
    return (theta.contiguous(), None if gate_w is None else gate_w.contiguous(),
            None if gate_b is None else gate_b.to(acc).contiguous(), s.contiguous())


def needs_grad(*tensors) -> bool:
    """Whether autograd will want gradients through a call on these tensors (None entries allowed)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def rows_of(h: torch.Tensor) -> torch.Tensor:
    """``h`` as [rows, D] with unit column stride (kernels take any row stride)."""
    h2 = h.reshape(-1, h.shape[-1])
    return h2 if h2.stride(-1) == 1 else h2.contiguous()


def gated_steer(
    h: torch.Tensor,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None = None,
    gate_b: torch.Tensor | None = None,
    strength: float | torch.Tensor = 1.0,
    norm_preserve: bool = False,
    return_gates: bool = False,
    check_finite: bool = True,
):
    """Gated multi-attribute steering of the last dimension of ``h``.

    out = h + Σ_k strength_k · sigmoid(h·gate_w_k + gate_b_k) · theta_k, optionally rescaled to keep
    each row's norm. ``h`` is ``[..., D]``; ``theta`` and ``gate_w`` are ``[K, D]`` in h's dtype and
    on h's device; ``gate_b`` is ``[K]``; ``gate_w=None`` means gates of 1 (plain addition).
    ``strength`` is a float, a ``[K]`` tensor, or a per-row ``[..., K]`` tensor (per-sample
    strengths and token masks in one launch). Differentiable in h, theta, gate_w, gate_b and
    strength. Returns ``out`` (h's shape and dtype), or ``(out, gates)`` with gates ``[..., K]`` in
    float32 (float64 for float64 input) when ``return_gates``.

    ``check_finite`` raises on NaN/Inf in theta, gate_w or gate_b; it synchronises with the device,
    so it is skipped under torch.compile and CUDA graph capture (validate vectors once up front).
    """
    theta, gate_w, gate_b, s = check_steer_args(h, theta, gate_w, gate_b, strength, check_finite)
    h2 = rows_of(h)
    out, gates, _ = gated_steer_rows(h2, theta, gate_w, gate_b, s, bool(norm_preserve))
    out = out.reshape(h.shape)
    if return_gates:
        return out, gates.reshape(tuple(h.shape[:-1]) + (theta.shape[0],))
    return out
