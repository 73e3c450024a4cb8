"""The triton backend: the kernels in ``steerkit.kernels`` (float32, float16, bfloat16).

Runs on CUDA GPUs, and on the CPU under ``TRITON_INTERPRET=1`` (float32/float16 only), which is how
the test suite exercises it on a machine without a GPU.
"""
from __future__ import annotations

import os

import torch

from ._alloc import empty, gated_steer_outputs

NAME = "triton"

try:
    import triton as _triton

    from ..kernels import gated_steer as _kernels
    from ..kernels import steer_add_rmsnorm as _norm_kernels
    from ..kernels import two_gemm as _gemm_kernel

    _why = ""
except Exception as err:  # ImportError, or a Triton that fails to initialise
    _triton = _kernels = _norm_kernels = _gemm_kernel = None
    _why = f"triton is not importable ({type(err).__name__}: {err}); pip install triton"


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def status() -> tuple[bool, str]:
    if _kernels is None:
        return False, _why
    where = "interpreter (TRITON_INTERPRET=1)" if interpreting() else (
        "GPU" if torch.cuda.is_available() else "no GPU visible; set TRITON_INTERPRET=1 to run on the CPU")
    return True, f"triton {_triton.__version__}, {where}"


def supports(device_type: str, dtype: torch.dtype, k: int | None = None) -> str | None:
    if interpreting():
        if device_type != "cpu":
            return "under TRITON_INTERPRET=1 the kernels run on cpu tensors only"
        if dtype not in (torch.float32, torch.float16):
            return f"the Triton interpreter runs float32 and float16, got {dtype}"
        return None
    if device_type != "cuda":
        return f"it runs on cuda tensors (or on the CPU under TRITON_INTERPRET=1), got a {device_type} tensor"
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"dtype {dtype} is not one of float32, float16, bfloat16"
    return None


def gated_steer_forward(h, theta, gate_w, gate_b, strength, norm_preserve):
    outs = gated_steer_outputs(h, theta.shape[0], torch.float32)
    return _kernels.forward(h, theta, gate_w, gate_b, strength, norm_preserve, *outs)


def gated_steer_backward_rows(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve):
    outs = gated_steer_outputs(h, theta.shape[0], torch.float32)
    return _kernels.backward_rows(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve, *outs)


def steer_add_rmsnorm_forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps,
                              weight_offset, cast_before_weight):
    new_residual = empty(tuple(branch.shape), branch.dtype, branch.device)
    normed = empty(tuple(branch.shape), branch.dtype, branch.device) if norm_weight is not None else None
    return _norm_kernels.forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps,
                                 weight_offset, cast_before_weight, new_residual, normed)


def two_gemm(x1, y1, x2=None, y2=None, bias=None, row_scale=None, out_dtype=None):
    return _gemm_kernel.two_gemm(x1, y1, x2, y2, bias, row_scale, out_dtype)
