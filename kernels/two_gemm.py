"""Two GEMMs into one accumulator, as one Triton kernel:
``out = row_scale ⊙ (X1 @ Y1 + X2 @ Y2) + bias``, fp32 accumulation, any strides.

Its users:
* the fused LoRA linear: forward ``x @ Wᵀ + (s·x Aᵀ) @ Bᵀ + b``, input gradient ``dy @ W + dxa @ A``;
  the rank-r term is a second, short K loop, so the LoRA branch never exists as a ``[tokens, out]``
  tensor of its own;
* steering folded through a projection: ``r ⊙ (a @ Wᵀ + c @ U) + b`` with U = θ Wᵀ, so the steered
  activation is never written (``steerkit.ops.steer_linear``)."""
from __future__ import annotations

import os

import torch
import triton
import triton.language as tl


@triton.jit
def _two_gemm_kernel(x1, y1, x2, y2, bias, scale, out, M, N, K1, K2,
                     sx1m, sx1k, sy1k, sy1n, sx2m, sx2k, sy2k, sy2n, som, son,
                     HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, PRECISION: tl.constexpr,
                     BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m.to(tl.int64) * BM + tl.arange(0, BM)
    rn = pid_n.to(tl.int64) * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros([BM, BN], tl.float32)
    for k0 in range(0, K1, BK):
        ks = k0 + rk
        a = tl.load(x1 + rm[:, None] * sx1m + ks[None, :] * sx1k, mask=(rm[:, None] < M) & (ks[None, :] < K1), other=0.0)
        b = tl.load(y1 + ks[:, None] * sy1k + rn[None, :] * sy1n, mask=(ks[:, None] < K1) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=tl.float32)
    for k0 in range(0, K2, BK):
        ks = k0 + rk
        a = tl.load(x2 + rm[:, None] * sx2m + ks[None, :] * sx2k, mask=(rm[:, None] < M) & (ks[None, :] < K2), other=0.0)
        b = tl.load(y2 + ks[:, None] * sy2k + rn[None, :] * sy2n, mask=(ks[:, None] < K2) & (rn[None, :] < N), other=0.0)
        acc += tl.dot(a, b, input_precision=PRECISION, out_dtype=tl.float32)
    if HAS_SCALE:
        acc *= tl.load(scale + rm, mask=rm < M, other=0.0).to(tl.float32)[:, None]
    if HAS_BIAS:
        acc += tl.load(bias + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    tl.store(out + rm[:, None] * som + rn[None, :] * son, acc.to(out.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


def two_gemm(x1: torch.Tensor, y1: torch.Tensor, x2: torch.Tensor | None = None, y2: torch.Tensor | None = None,
             bias: torch.Tensor | None = None, row_scale: torch.Tensor | None = None,
             out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``row_scale[:, None] * (x1 @ y1 + x2 @ y2) + bias`` in ``out_dtype`` (default x1's dtype).
    Every matrix operand is 2-D with any strides; the second product, bias and row scale are optional."""
    m, n = x1.shape[0], y1.shape[1]  # shapes are checked by the op (steerkit.ops.two_gemm)
    out = torch.empty((m, n), dtype=out_dtype or x1.dtype, device=x1.device)
    if m == 0 or n == 0:
        return out
    if x2 is None:  # an empty second product: the K2 loop runs zero times
        x2, y2 = x1[:, :0], y1[:0, :]
    interp = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    bm, bn, bk = (64, 64, 32) if interp else (128, 128, 32)
    grid = (triton.cdiv(m, bm), triton.cdiv(n, bn))
    _two_gemm_kernel[grid](x1, y1, x2, y2, bias if bias is not None else out, row_scale if row_scale is not None else out,
                           out, m, n, x1.shape[1], x2.shape[1],
                           x1.stride(0), x1.stride(1), y1.stride(0), y1.stride(1), x2.stride(0), x2.stride(1),
                           y2.stride(0), y2.stride(1), out.stride(0), out.stride(1),
                           HAS_BIAS=bias is not None, HAS_SCALE=row_scale is not None,
                           # float32 operands multiply in full precision (tl.dot's default is TF32 on a GPU)
                           PRECISION="ieee" if x1.dtype == torch.float32 else None,
                           BM=bm, BN=bn, BK=bk, num_warps=8 if not interp else 4)
    return out
