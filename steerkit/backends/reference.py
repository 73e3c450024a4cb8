"""The reference backend: steerkit.reference in PyTorch, any device, any floating dtype."""
from __future__ import annotations

import torch

from .. import reference

NAME = "reference"


def status() -> tuple[bool, str]:
    return True, f"PyTorch {torch.__version__}"


def supports(device_type: str, dtype: torch.dtype, k: int | None = None) -> str | None:
    return None if dtype.is_floating_point else f"dtype {dtype} is not floating point"


gated_steer_forward = reference.gated_steer_forward_rows
gated_steer_backward_rows = reference.gated_steer_backward_rows
two_gemm = reference.two_gemm


def steer_add_rmsnorm_forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps,
                              weight_offset, cast_before_weight):
    return reference.steer_add_rmsnorm(branch, residual, theta, gate_w, gate_b, strength, norm_preserve,
                                       norm_weight, eps, weight_offset, cast_before_weight)
