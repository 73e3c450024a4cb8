"""``steerkit::two_gemm``: ``row_scale ⊙ (x1 @ y1 + x2 @ y2) + bias`` as a torch.library custom op
whose kernel comes from the backend registry (Triton on a GPU; torch's GEMM, the reference, where
Triton cannot run or ``STEERKIT_BACKEND=two_gemm=reference`` says so), so torch.compile sees one
opaque op with a fake implementation instead of tracing into a Python launcher, and CUDA graphs
capture it like any other kernel. Used by the fused LoRA linear and by ``steer_linear``; not
differentiable itself (its callers own the backward)."""
from __future__ import annotations

from typing import Optional

import torch

from .. import backends
from .gated_steer import direct


def _check_shapes(x1, y1, x2, y2) -> None:
    m, n = x1.shape[0], y1.shape[1]
    if x1.shape[1] != y1.shape[0] or (x2 is not None and (y2 is None or tuple(x2.shape) != (m, y2.shape[0])
                                                          or y2.shape[1] != n)):
        raise ValueError(f"two_gemm: shapes do not chain: x1 {list(x1.shape)} @ y1 {list(y1.shape)}"
                         + ("" if x2 is None else f" + x2 {list(x2.shape)} @ y2 {list(getattr(y2, 'shape', []))}"))


@torch.library.custom_op("steerkit::two_gemm", mutates_args=())
def _two_gemm_op(
    x1: torch.Tensor,
    y1: torch.Tensor,
    x2: Optional[torch.Tensor] = None,
    y2: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    row_scale: Optional[torch.Tensor] = None,
    out_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    return _impl(x1, y1, x2, y2, bias, row_scale, out_dtype)


def _impl(x1, y1, x2, y2, bias, row_scale, out_dtype):
    _check_shapes(x1, y1, x2, y2)
    return backends.select("two_gemm", x1).two_gemm(x1, y1, x2, y2, bias, row_scale, out_dtype)


@_two_gemm_op.register_fake
def _(x1, y1, x2=None, y2=None, bias=None, row_scale=None, out_dtype=None):
    return x1.new_empty((x1.shape[0], y1.shape[1]), dtype=out_dtype or x1.dtype)


def two_gemm(x1, y1, x2=None, y2=None, bias=None, row_scale=None, out_dtype=None) -> torch.Tensor:
    """The op, or its backend directly when called eagerly on plain tensors (``gated_steer.direct``)."""
    if direct(x1):
        return _impl(x1, y1, x2, y2, bias, row_scale, out_dtype)
    return _two_gemm_op(x1, y1, x2, y2, bias, row_scale, out_dtype)
