"""``steerkit::two_gemm``: the Triton kernel ``row_scale ⊙ (x1 @ y1 + x2 @ y2) + bias`` as a
torch.library custom op, so torch.compile sees one opaque op with a fake implementation instead of
tracing into a Python launcher (and CUDA graphs capture it like any other kernel). Used by the fused
LoRA linear and by ``steer_linear``."""
from __future__ import annotations

from typing import Optional

import torch


@torch.library.custom_op("steerkit::two_gemm", mutates_args=())
def two_gemm(
    x1: torch.Tensor,
    y1: torch.Tensor,
    x2: Optional[torch.Tensor] = None,
    y2: Optional[torch.Tensor] = None,
    bias: Optional[torch.Tensor] = None,
    row_scale: Optional[torch.Tensor] = None,
    out_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    from ..kernels import two_gemm as kernel  # triton is imported only when the op runs

    return kernel.two_gemm(x1, y1, x2, y2, bias, row_scale, out_dtype)


@two_gemm.register_fake
def _(x1, y1, x2=None, y2=None, bias=None, row_scale=None, out_dtype=None):
    return x1.new_empty((x1.shape[0], y1.shape[1]), dtype=out_dtype or x1.dtype)


_available: bool | None = None


def available() -> bool:
    """Whether triton (and so this op's kernel) can be imported here; found out once."""
    global _available
    if _available is None:
        try:
            from ..kernels import two_gemm as _  # noqa: F401

            _available = True
        except Exception:
            _available = False
    return _available
