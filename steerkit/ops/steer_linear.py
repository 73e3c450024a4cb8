"""The ``steer_linear`` op: steering at a projection's input (``attn_heads``) folded through the
projection, so the steered activation is never written:

    o_proj(r·(a + Σ_k c_k θ_k)) = r·(a Wᵀ + Σ_k c_k (W θ_k)) + b,   c_k = strength_k·σ(a·w_k + b_k)

with ``U = θ Wᵀ`` [K, out] computed once (``fold``). The gates need a·w_k, and norm preservation
needs ‖a + Σ c θ‖² = ‖a‖² + 2 Σ c_k (a·θ_k) + cᵀ(θθᵀ)c: one skinny product of a with [w; θ]
and a row norm, no D-wide write. On CUDA the projection and the steering term are one Triton
kernel (``two_gemm`` with a row scale, from the backend registry); elsewhere torch's GEMM, and whenever
autograd needs gradients, the same algebra in differentiable torch ops.

Exact in exact arithmetic; in floating point it differs from steering before the projection by
the rounding of a different order of operations (tested: ≤ 1e-5 relative in float32, ≤ 1e-2
in bfloat16/float16, against the float64 reference ``steerkit.reference.steer_then_linear``). The
norm identity cancels when the steer nearly annuls a row (‖a + Σcθ‖ ≪ ‖a‖); such rows take the norm
summed directly (``_checks_on_host`` says when that costs a look at the rows)."""
from __future__ import annotations

import torch

from .. import backends, reference
from ..reference import NORM_EPS, accumulate_dtype
from .gated_steer import _fail, check_steer_args, direct, needs_grad, rows_of
from .two_gemm import two_gemm

_OP = "steer_linear"


def fold(weight: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``U = θ Wᵀ`` [K, out] in W's dtype, accumulated in float32: each θ_k pushed through the projection."""
    acc = accumulate_dtype(weight.dtype)
    return (theta.to(acc) @ weight.to(acc).t()).to(weight.dtype)


def _checks_on_host(x: torch.Tensor) -> bool:
    """Whether the cancellation guard may look at its rows on the host: on the CPU in eager mode, where
    that costs nothing. On a GPU a look would synchronise every call, and a compiled graph cannot
    branch on data, so there the direct norm is always computed and selected per row (a [N, D] temporary
    the compiler fuses into its reduction)."""
    return x.device.type == "cpu" and not torch.compiler.is_compiling()


def _coefficients(a2, theta, gate_w, gate_b, s, norm_preserve, gemm):
    """(c [N,K], r [N] or None) in the accumulation dtype: the steer's per-row coefficients and scale."""
    acc = accumulate_dtype(a2.dtype)
    k = theta.shape[0]
    cols = ([gate_w] if gate_w is not None else []) + ([theta] if norm_preserve else [])
    p = None
    if cols:
        m = torch.cat(cols, 0)
        p = gemm(a2, m.t(), out_dtype=acc)
    if gate_w is not None:
        z = p[:, :k] + (gate_b if gate_b is not None else 0.0)
        c = s * torch.sigmoid(z)
    else:
        c = s.expand(a2.shape[0], k) if s.dim() == 1 else s
    if not norm_preserve:
        return c, None
    a_theta = p[:, -k:]
    th = theta.to(acc)
    sq = torch.linalg.vector_norm(a2, dim=-1, dtype=acc).square()
    nu2 = sq + 2 * (c * a_theta).sum(-1) + ((c @ (th @ th.t())) * c).sum(-1)
    nu = nu2.clamp_min(0).sqrt()
    # the identity cancels where the steer nearly annuls a row; there the norm is summed directly, with
    # the threshold gated_steer's kernels use (steered norm² below a quarter of ‖a‖²)
    cancel = nu2 < 0.25 * sq
    if not _checks_on_host(a2) or bool(cancel.any()):
        direct = torch.linalg.vector_norm(a2.to(acc) + c @ th, dim=-1, dtype=acc)
        nu = torch.where(cancel, direct, nu)
    r = torch.where(nu > NORM_EPS, sq.sqrt() / nu.clamp_min(NORM_EPS), torch.ones_like(nu))
    return c, r


def steer_linear(
    a: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None = None,
    gate_b: torch.Tensor | None = None,
    strength: float | torch.Tensor = 1.0,
    norm_preserve: bool = False,
    folded: torch.Tensor | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    """``F.linear(gated_steer(a, theta, gate_w, gate_b, strength, norm_preserve), weight, bias)``,
    computed through the fold. ``a`` is ``[..., D]``; ``weight`` [out, D] and ``bias`` [out] are the
    projection's, in a's dtype; ``folded`` is ``fold(weight, theta)`` (computed here when None, or
    when theta needs gradients). Returns ``[..., out]``."""
    theta, gate_w, gate_b, s = check_steer_args(a, theta, gate_w, gate_b, strength, check_finite, _OP)
    d = a.shape[-1]
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[1] != d:
        _fail("weight", f"a [out, D={d}] tensor", f"{list(getattr(weight, 'shape', []))}", _OP)
    if weight.dtype != a.dtype or weight.device != a.device:
        _fail("weight", f"of a's dtype {a.dtype} on {a.device}", f"{weight.dtype} on {weight.device}", _OP)
    out_f = weight.shape[0]
    if bias is not None and (tuple(bias.shape) != (out_f,) or bias.device != a.device):
        _fail("bias", f"a [out={out_f}] tensor on {a.device}", f"{list(bias.shape)} on {bias.device}", _OP)
    grad = needs_grad(a, weight, bias, theta, gate_w, gate_b, s)
    if folded is None or (grad and theta.requires_grad):
        folded = fold(weight, theta)
    elif tuple(folded.shape) != (theta.shape[0], out_f):
        _fail("folded", f"fold(weight, theta) of shape [{theta.shape[0]}, {out_f}]", f"{list(folded.shape)}", _OP)
    a2 = rows_of(a)
    # the registry's two-GEMM kernel when nothing needs gradients, else the same algebra in torch ops;
    # where the registry routes to the reference anyway, it is called at once (two calls' dispatch saved)
    torch_ops = grad or (direct(a2) and backends.route("two_gemm", a2.device.type, a2.dtype)[0] == "reference")
    gemm = reference.two_gemm if torch_ops else two_gemm
    c, r = _coefficients(a2, theta, gate_w, gate_b, s, norm_preserve, gemm)
    y = gemm(a2, weight.t(), c.to(a.dtype), folded.to(a.dtype), bias, row_scale=r)
    return y.reshape(tuple(a.shape[:-1]) + (out_f,))
