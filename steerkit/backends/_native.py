"""Calls into the compiled modules (``steerkit._C`` and ``steerkit._C_cuda``), which share one
raw-pointer signature (csrc/bind_gated_steer.h). Tensors are checked by the op layer; this module
only allocates outputs and passes addresses, strides and the current stream."""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import torch

from ._alloc import empty, gated_steer_outputs

DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}


def build_info() -> dict:
    path = Path(__file__).resolve().parent.parent / "_build_info.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def load(module: str, key: str) -> tuple[ModuleType | None, str]:
    """Import a compiled module; on failure say why, using what the build recorded."""
    try:
        return importlib.import_module(f"steerkit.{module}"), ""
    except ImportError as err:
        reason = build_info().get(key, {}).get("reason")
        if reason:
            return None, reason
        return None, f"steerkit.{module} is not built or failed to import ({err}); reinstall steerkit"


def _addr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def forward(mod, stream: int, h, theta, gate_w, gate_b, strength, norm_preserve):
    n, d = h.shape
    k = theta.shape[0]
    out, gates, norms = gated_steer_outputs(h, k)
    if n == 0:
        return out, gates, norms
    mod.gated_steer_forward(
        h=_addr(h), h_row_stride=h.stride(0), out=_addr(out), theta=_addr(theta), gate_w=_addr(gate_w),
        gate_b=_addr(gate_b), strength=_addr(strength),
        strength_row_stride=strength.stride(0) if strength.dim() == 2 else 0,
        gates=_addr(gates), norms=_addr(norms), n=n, d=d, k=k, dtype=DTYPE_CODES[h.dtype],
        norm_preserve=norm_preserve, stream=stream,
    )
    return out, gates, norms


def backward_rows(mod, stream: int, grad, h, theta, gate_w, strength, gates, norms, gram, norm_preserve):
    n, d = h.shape
    k = theta.shape[0]
    dh, dc, ra = gated_steer_outputs(h, k)
    if n == 0:
        return dh, dc, ra
    mod.gated_steer_backward(
        grad=_addr(grad), grad_row_stride=grad.stride(0), h=_addr(h), h_row_stride=h.stride(0),
        theta=_addr(theta), gate_w=_addr(gate_w), strength=_addr(strength),
        strength_row_stride=strength.stride(0) if strength.dim() == 2 else 0,
        gates=_addr(gates), norms=_addr(norms), gram=_addr(gram), dh=_addr(dh), dc=_addr(dc), ra=_addr(ra),
        n=n, d=d, k=k, dtype=DTYPE_CODES[h.dtype], norm_preserve=norm_preserve, stream=stream,
    )
    return dh, dc, ra


def steer_add_rmsnorm(mod, stream: int, branch, residual, theta, gate_w, gate_b, strength, norm_preserve,
                      norm_weight, eps, weight_offset, cast_before_weight):
    n, d = branch.shape
    new_residual = empty((n, d), branch.dtype, branch.device)
    normed = empty((n, d), branch.dtype, branch.device) if norm_weight is not None else None
    if n == 0:
        return new_residual, normed
    mod.steer_add_rmsnorm(
        branch=_addr(branch), branch_row_stride=branch.stride(0), residual=_addr(residual),
        residual_row_stride=residual.stride(0), new_residual=_addr(new_residual), normed=_addr(normed),
        theta=_addr(theta), gate_w=_addr(gate_w), gate_b=_addr(gate_b), strength=_addr(strength),
        strength_row_stride=strength.stride(0) if strength.dim() == 2 else 0, norm_weight=_addr(norm_weight),
        eps=float(eps), weight_offset=float(weight_offset), cast_before_weight=bool(cast_before_weight),
        n=n, d=d, k=theta.shape[0], dtype=DTYPE_CODES[branch.dtype], norm_preserve=norm_preserve, stream=stream,
    )
    return new_residual, normed
