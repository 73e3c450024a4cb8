"""steer_add_rmsnorm in Triton: steering of a block's output, the residual add and the next RMSNorm
in one kernel. Each program takes BLOCK_N rows (tile shapes and coefficients as in ``gated_steer``)
and makes three sweeps over them: gate dot products, ‖branch‖² and branch·θ, then the new residual (written once,
its ‖·‖² summed from the rounded values the norm will see), then the normed row. The last sweep
recomputes the residual from branch and residual rather than reading back what this program just
wrote, so no cross-thread ordering of global memory is assumed; on a GPU those re-reads come from
L2. Same math as steerkit.reference.steer_add_rmsnorm, accumulated in float32."""
from __future__ import annotations

import triton
import triton.language as tl

from .gated_steer import _coefficients, _steered_chunk, launch_config


@triton.jit
def _steered_rows(br_rows, res_rows, th_ptr, c, c_hi, c_lo, r, ds, dmask, nmask, ks, kmask, D, USE_DOT: tl.constexpr,
                  PRECISION: tl.constexpr, SPLIT: tl.constexpr):
    """residual + r·(branch + Σ c_k θ_k) for one [BLOCK_N, BLOCK_D] chunk, in float32."""
    u = _steered_chunk(br_rows, th_ptr, c, c_hi, c_lo, ds, dmask, nmask, ks, kmask, D, USE_DOT, PRECISION, SPLIT)
    res = tl.load(res_rows + ds[None, :], mask=nmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
    return res + r[:, None] * u


@triton.jit
def _kernel(br_ptr, br_stride, res_ptr, res_stride, newres_ptr, normed_ptr, th_ptr, w_ptr, b_ptr, s_ptr, s_stride,
            gram_ptr, nw_ptr, N, D, K, eps, offset,
            HAS_W: tl.constexpr, HAS_B: tl.constexpr, NORM: tl.constexpr, HAS_NORM_W: tl.constexpr,
            CAST_BEFORE_W: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr, SPLIT: tl.constexpr,
            BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = rows < N
    ks = tl.arange(0, BLOCK_K)
    kmask = ks < K
    br_rows = br_ptr + rows[:, None] * br_stride
    res_rows = res_ptr + rows[:, None] * res_stride
    _, c, c_hi, c_lo, _, _, r = _coefficients(br_rows, w_ptr, th_ptr, b_ptr, s_ptr, s_stride, gram_ptr, rows, nmask,
                                              ks, kmask, D, HAS_W, HAS_B, NORM, USE_DOT, PRECISION, SPLIT,
                                              BLOCK_N, BLOCK_K, BLOCK_D)
    out_rows = rows[:, None] * D
    ss = tl.zeros([BLOCK_N], tl.float32)
    for d0 in range(0, D, BLOCK_D):
        ds = d0 + tl.arange(0, BLOCK_D)
        dmask = ds < D
        v = _steered_rows(br_rows, res_rows, th_ptr, c, c_hi, c_lo, r, ds, dmask, nmask, ks, kmask, D, USE_DOT,
                          PRECISION, SPLIT)
        vr = v.to(newres_ptr.dtype.element_ty)
        tl.store(newres_ptr + out_rows + ds[None, :], vr, mask=nmask[:, None] & dmask[None, :])
        vf = vr.to(tl.float32)
        ss += tl.sum(vf * vf, axis=1)
    if HAS_NORM_W:
        inv = 1.0 / tl.sqrt(ss / D + eps)
        for d0 in range(0, D, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            dmask = ds < D
            v = _steered_rows(br_rows, res_rows, th_ptr, c, c_hi, c_lo, r, ds, dmask, nmask, ks, kmask, D, USE_DOT,
                              PRECISION, SPLIT)
            y = v.to(newres_ptr.dtype.element_ty).to(tl.float32) * inv[:, None]
            if CAST_BEFORE_W:
                y = y.to(normed_ptr.dtype.element_ty).to(tl.float32)
            wn = tl.load(nw_ptr + ds, mask=dmask, other=0.0).to(tl.float32) + offset
            tl.store(normed_ptr + out_rows + ds[None, :], (wn[None, :] * y).to(normed_ptr.dtype.element_ty),
                     mask=nmask[:, None] & dmask[None, :])


def forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps, weight_offset,
            cast_before_weight, new_residual, normed):
    """Fills ``new_residual`` [N,D] and, when ``norm_weight`` is given, ``normed`` [N,D]."""
    n, d = branch.shape
    k = theta.shape[0]
    if n == 0:
        return new_residual, normed
    cfg = launch_config(branch, theta, norm_preserve)
    _kernel[(triton.cdiv(n, cfg["BLOCK_N"]),)](
        branch, branch.stride(0), residual, residual.stride(0), new_residual,
        normed if normed is not None else new_residual, theta, gate_w if gate_w is not None else theta,
        gate_b if gate_b is not None else strength, strength, strength.stride(0) if strength.dim() == 2 else 0,
        cfg.pop("gram"), norm_weight if norm_weight is not None else theta, n, d, k, float(eps), float(weight_offset),
        HAS_W=gate_w is not None, HAS_B=gate_b is not None, NORM=bool(norm_preserve),
        HAS_NORM_W=norm_weight is not None, CAST_BEFORE_W=bool(cast_before_weight), **cfg,
    )
    return new_residual, normed
