"""The cuda backend: the CUDA extension ``steerkit._C_cuda`` (float32, float16, bfloat16).

The module imports on a machine without a GPU (cudart is linked statically); only calling it
needs one. Kernels run on torch's current stream and never synchronise with the host.
"""
from __future__ import annotations

import torch

from . import _native

NAME = "cuda"
_mod, _why = _native.load("_C_cuda", "cuda")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# The per-row kernels keep O(K) floats of shared memory per warp; the backward, the largest, needs
# 4·(20K + 12) bytes at 256 threads, under the default 48 KiB up to K = 613. Beyond MAX_K, supports()
# passes the call to triton (automatic choice) or refuses it (cuda forced).
MAX_K = 512


def status() -> tuple[bool, str]:
    if _mod is None:
        return False, _why
    rt = _mod.runtime_version()
    detail = f"steerkit._C_cuda (CUDA runtime {rt // 1000}.{rt % 1000 // 10}, archs {getattr(_mod, 'archs', '?')})"
    if not torch.cuda.is_available():
        return True, detail + "; built, but no GPU is visible to torch"
    return True, detail


def supports(device_type: str, dtype: torch.dtype, k: int | None = None) -> str | None:
    if device_type != "cuda":
        return f"it runs on cuda tensors, got a {device_type} tensor"
    if dtype not in _DTYPES:
        return f"dtype {dtype} is not one of float32, float16, bfloat16"
    if k is not None and k > MAX_K:
        return f"K={k} attributes is more than its kernels hold in shared memory (MAX_K={MAX_K})"
    return None


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def gated_steer_forward(h, theta, gate_w, gate_b, strength, norm_preserve):
    with torch.cuda.device(h.device):
        return _native.forward(_mod, _stream(h), h, theta, gate_w, gate_b, strength, norm_preserve)


def gated_steer_backward_rows(grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve):
    with torch.cuda.device(h.device):
        return _native.backward_rows(_mod, _stream(h), grad, h, theta, gate_w, strength, gates, norms, gram,
                                     norm_preserve)


def steer_add_rmsnorm_forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps,
                              weight_offset, cast_before_weight):
    with torch.cuda.device(branch.device):
        return _native.steer_add_rmsnorm(_mod, _stream(branch), branch, residual, theta, gate_w, gate_b, strength,
                                         norm_preserve, norm_weight, eps, weight_offset, cast_before_weight)
