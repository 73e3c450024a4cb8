"""Pure-PyTorch math of every steerkit op: the specification every backend is tested against.

Everything here is differentiable with ordinary autograd and runs on any device and dtype. Nothing
here is tuned for speed.
"""
from __future__ import annotations

import torch

# Rows whose steered norm is at most this are left unscaled by norm preservation.
NORM_EPS = 1e-8


def accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the 16-bit and 32-bit dtypes, float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


def gated_steer_forward_rows(
    h: torch.Tensor,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None,
    gate_b: torch.Tensor | None,
    strength: torch.Tensor,
    norm_preserve: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``gated_steer`` plus what its backward needs: ``(out, gates, norms)``.

    ``gates`` [N,K] and ``norms`` [N,2] = (‖h‖, ‖h + Σ strength·gate·theta‖) are in the
    accumulation dtype. Every backend's forward returns these three tensors.
    """
    acc = accumulate_dtype(h.dtype)
    hf = h.to(acc)
    th = theta.to(acc)
    n, k = h.shape[0], theta.shape[0]
    if gate_w is None:
        gates = torch.ones(n, k, dtype=acc, device=h.device)
    else:
        z = hf @ gate_w.to(acc).T
        if gate_b is not None:
            z = z + gate_b.to(acc)
        gates = torch.sigmoid(z)
    coef = strength.to(acc) * gates  # [N,K]; a [K] strength broadcasts over rows
    u = hf + coef @ th
    nh = torch.linalg.vector_norm(hf, dim=-1, keepdim=True)
    nu = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
    if norm_preserve:
        scale = torch.where(nu > NORM_EPS, nh / nu.clamp_min(NORM_EPS), torch.ones_like(nu))
        u = u * scale
    return u.to(h.dtype), gates, torch.cat([nh, nu], dim=1)


def gated_steer(
    h: torch.Tensor,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None,
    gate_b: torch.Tensor | None,
    strength: torch.Tensor,
    norm_preserve: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MAT-Steer's gated multi-attribute edit of the rows of ``h``: the specification.

    h [N,D], theta [K,D], gate_w [K,D] or None, gate_b [K] or None, strength [K] or [N,K].
    z = h·w_k + b_k, g = sigmoid(z) (all ones when ``gate_w`` is None: plain activation addition),
    out = h + Σ_k strength_k g_k theta_k, rescaled to ‖h‖ when ``norm_preserve`` (rows whose
    steered norm is ≤ 1e-8 stay unscaled). Returns ``(out [N,D] in h's dtype, gates [N,K])``.
    """
    out, gates, _ = gated_steer_forward_rows(h, theta, gate_w, gate_b, strength, norm_preserve)
    return out, gates


def gated_steer_backward_rows(
    grad_out: torch.Tensor,
    h: torch.Tensor,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None,
    strength: torch.Tensor,
    gates: torch.Tensor,
    norms: torch.Tensor,
    gram: torch.Tensor,
    norm_preserve: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The row-local half of ``gated_steer``'s backward, written out by hand.

    Every backend implements this same function; the reductions over rows (gradients of theta,
    gate_w, gate_b and a [K] strength) are done once, in ``steerkit.ops.gated_steer``, from its
    outputs. With c = strength*gates, u = h + c@theta, r = ‖h‖/‖u‖ and a = (grad·u)/‖u‖²:

        dL/du_n = r (grad_n - a u_n)
        dc_nk   = dL/du_n · theta_k = r (grad·theta_k - a (h·theta_k + (c@gram)_k))
        dh_n    = dL/du_n + (grad·u)/(‖u‖‖h‖) h_n + Σ_k dc_nk strength_nk g(1-g)_nk gate_w_k

    ``norms`` [N,2] holds (‖h‖, ‖u‖) from the forward; ``gram`` is theta@thetaᵀ. Returns
    ``(dh [N,D] in h's dtype, dc [N,K], ra [N,2] = (r, a))``, the last two in the
    accumulation dtype.
    """
    acc = accumulate_dtype(h.dtype)
    g = grad_out.to(acc)
    hf = h.to(acc)
    th = theta.to(acc)
    gates = gates.to(acc)
    s = strength.to(acc).expand_as(gates)
    c = s * gates
    g_theta = g @ th.T
    n = h.shape[0]
    if norm_preserve:
        nh, nu = norms[:, 0:1].to(acc), norms[:, 1:2].to(acc)
        scaled = nu > NORM_EPS
        nu_safe = nu.clamp_min(NORM_EPS)
        g_u = (g * hf).sum(-1, keepdim=True) + (c * g_theta).sum(-1, keepdim=True)
        r = torch.where(scaled, nh / nu_safe, torch.ones_like(nu))
        a = torch.where(scaled, g_u / nu_safe**2, torch.zeros_like(nu))
        u_theta = hf @ th.T + c @ gram.to(acc)
        dc = r * (g_theta - a * u_theta)
        nh_safe = torch.where(nh > 0, nh, torch.ones_like(nh))
        h_coef = torch.where(scaled & (nh > 0), g_u / (nu_safe * nh_safe), torch.zeros_like(nu))
        dh = r * (g - a * (hf + c @ th)) + h_coef * hf
    else:
        r = torch.ones(n, 1, dtype=acc, device=h.device)
        a = torch.zeros(n, 1, dtype=acc, device=h.device)
        dc = g_theta
        dh = g.clone()
    if gate_w is not None:
        dz = dc * s * gates * (1 - gates)
        dh = dh + dz @ gate_w.to(acc)
    ra = torch.cat([r, a], dim=1)
    return dh.to(h.dtype), dc, ra


def lora_linear(x, weight, bias, lora_a, lora_b, scale: float):
    """The LoRA linear: ``x Wᵀ (+ bias) + scale · (x Aᵀ) Bᵀ`` (W frozen; dropout 0)."""
    y = x @ weight.t() + scale * ((x @ lora_a.t()) @ lora_b.t())
    return y if bias is None else y + bias


def gated_down(gate, up, act, weight, bias, lora_a, lora_b, scale: float):
    """The down projection of a gated MLP: ``down(act(gate) * up)`` with ``down`` the LoRA linear above
    (a plain frozen linear where ``lora_a`` is None)."""
    h = act(gate) * up
    if lora_a is None:
        return h @ weight.t() if bias is None else h @ weight.t() + bias
    return lora_linear(h, weight, bias, lora_a, lora_b, scale)


def probe_mismatch(got: torch.Tensor, want: torch.Tensor) -> float | None:
    """The relative difference ``‖got − want‖ / ‖want‖`` of a fast path's probe output from what it
    stands in for, when beyond what rounding in ``want``'s dtype explains; None when they agree."""
    tol = 1e-4 if want.dtype in (torch.float32, torch.float64) else 3e-2
    err = float((got.float() - want.float()).norm() / want.float().norm().clamp_min(1e-30))
    return None if err == err and err <= tol else err  # NaN disagrees


def two_gemm(x1: torch.Tensor, y1: torch.Tensor, x2: torch.Tensor | None = None, y2: torch.Tensor | None = None,
             bias: torch.Tensor | None = None, row_scale: torch.Tensor | None = None,
             out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``row_scale[:, None] * (x1 @ y1 + x2 @ y2) + bias`` in ``out_dtype`` (x1's by default): the
    spec of the fused two-GEMM kernel, and the PyTorch path where that kernel does not run. The
    products are taken in the output dtype (torch's GEMM accumulates 16-bit products in float32);
    the second is accumulated into the first in place, so no second [rows, out] temporary is made.
    Differentiable."""
    dt = out_dtype or x1.dtype

    def cast(t):
        return t if t.dtype == dt else t.to(dt)

    if bias is not None and row_scale is None:
        y = torch.addmm(cast(bias), cast(x1), cast(y1))
    else:
        y = cast(x1) @ cast(y1)
    if x2 is not None:
        y = y.addmm_(cast(x2), cast(y2))
    if row_scale is not None:
        y = y * cast(row_scale)[:, None]
        if bias is not None:
            y = y + cast(bias)
    return y


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, weight_offset: float = 0.0,
             cast_before_weight: bool = True) -> torch.Tensor:
    """RMSNorm of the rows of ``x`` as the HF families compute it, in x's dtype.

    Llama-style (``cast_before_weight``): the normalised row is rounded to x's dtype, then scaled by
    the weight. Gemma-style: scaled by ``weight + weight_offset`` in the accumulation dtype, then
    rounded once."""
    acc = accumulate_dtype(x.dtype)
    xf = x.to(acc)
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    w = weight.to(acc) + weight_offset
    if cast_before_weight:
        return (w * y.to(x.dtype).to(acc)).to(x.dtype)
    return (w * y).to(x.dtype)


def steer_add_rmsnorm(
    branch: torch.Tensor,
    residual: torch.Tensor,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None,
    gate_b: torch.Tensor | None,
    strength: torch.Tensor,
    norm_preserve: bool,
    norm_weight: torch.Tensor | None,
    eps: float = 1e-6,
    weight_offset: float = 0.0,
    cast_before_weight: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Steering of a block's output fused with the residual add and the next RMSNorm.

    new_residual = residual + gated_steer(branch), rounded once to the storage dtype;
    normed = rms_norm(new_residual) (see ``rms_norm``), or None when ``norm_weight`` is None.
    The steered branch is never rounded on its own: it is added to the residual in the
    accumulation dtype."""
    acc = accumulate_dtype(branch.dtype)
    steered, _, _ = gated_steer_forward_rows(
        branch.to(acc), theta.to(acc), None if gate_w is None else gate_w.to(acc),
        None if gate_b is None else gate_b.to(acc), strength.to(acc), norm_preserve)
    new_residual = (residual.to(acc) + steered).to(branch.dtype)
    if norm_weight is None:
        return new_residual, None
    return new_residual, rms_norm(new_residual, norm_weight, eps, weight_offset, cast_before_weight)


def steer_then_linear(
    a: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None,
    gate_b: torch.Tensor | None,
    strength: torch.Tensor,
    norm_preserve: bool,
) -> torch.Tensor:
    """Steering at a projection's input, then the projection: ``(gated_steer(a)) Wᵀ (+ bias)``.
    What the fold through the projection (``steerkit.ops.steer_linear``) must equal."""
    steered, _ = gated_steer(a, theta, gate_w, gate_b, strength, norm_preserve)
    y = steered @ weight.t()
    return y if bias is None else y + bias
