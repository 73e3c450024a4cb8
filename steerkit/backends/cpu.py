"""The cpu backend: the C++/OpenMP extension ``steerkit._C`` (float32, float64, float16, bfloat16)."""
from __future__ import annotations

import torch

from .. import reference as _reference
from . import _native

NAME = "cpu"
_mod, _why = _native.load("_C", "cpu")


def status() -> tuple[bool, str]:
    if _mod is None:
        return False, _why
    return True, f"steerkit._C (C++17, OpenMP {'on' if _mod.openmp else 'off'}, {_mod.max_threads()} threads)"


def supports(device_type: str, dtype: torch.dtype, k: int | None = None) -> str | None:
    if device_type != "cpu":
        return f"it runs on cpu tensors, got a {device_type} tensor"
    if dtype not in _native.DTYPE_CODES:
        return f"dtype {dtype} is not one of float32, float64, float16, bfloat16"
    return None


def gated_steer_forward(h, theta, gate_w, gate_b, strength, norm_preserve):
    return _native.forward(_mod, 0, h, theta, gate_w, gate_b, strength, norm_preserve)


def gated_steer_backward_rows(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve):
    return _native.backward_rows(_mod, 0, grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve)


def steer_add_rmsnorm_forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps,
                              weight_offset, cast_before_weight):
    """No fused C++ kernel: the C++ gated_steer, then torch's add and RMSNorm (what the hook path costs)."""
    steered, _, _ = gated_steer_forward(branch, theta, gate_w, gate_b, strength, norm_preserve)
    new_residual = residual + steered
    if norm_weight is None:
        return new_residual, None
    return new_residual, _reference.rms_norm(new_residual, norm_weight, eps, weight_offset, cast_before_weight)
