"""The ``steer_add_rmsnorm`` op: steering at ``attn_out``/``mlp_out`` fused with the residual add and
the RMSNorm that follows it, so a steered layer reads the branch and residual rows once and writes
the new residual and the normed row once (an unsteered HF layer does the same traffic in two
kernels; hook-based steering adds a third full pass).

It is an inference op: its kernels have no backward. When autograd needs gradients through it,
the call runs as the differentiable composition ``gated_steer`` → add → RMSNorm instead (same
math; the steered branch is rounded to the storage dtype once more)."""
from __future__ import annotations

from typing import Optional

import torch

from .. import backends
from ..reference import rms_norm
from .gated_steer import _fail, check_steer_args, direct, gated_steer, needs_grad, rows_of

_OP = "steer_add_rmsnorm"


def _fwd_impl(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps, weight_offset,
              cast_before_weight):
    be = backends.select("steer_add_rmsnorm", branch, theta.shape[0])
    return be.steer_add_rmsnorm_forward(branch, residual, theta, gate_w, gate_b, strength, norm_preserve,
                                        norm_weight, eps, weight_offset, cast_before_weight)


@torch.library.custom_op("steerkit::steer_add_rmsnorm_fwd", mutates_args=())
def _fwd(
    branch: torch.Tensor,
    residual: torch.Tensor,
    theta: torch.Tensor,
    gate_w: Optional[torch.Tensor],
    gate_b: Optional[torch.Tensor],
    strength: torch.Tensor,
    norm_preserve: bool,
    norm_weight: Optional[torch.Tensor],
    eps: float,
    weight_offset: float,
    cast_before_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    new_residual, normed = _fwd_impl(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight,
                                     eps, weight_offset, cast_before_weight)
    return new_residual, normed if normed is not None else branch.new_empty(0)


@_fwd.register_fake
def _(branch, residual, theta, gate_w, gate_b, strength, norm_preserve, norm_weight, eps, weight_offset,
      cast_before_weight):
    return branch.new_empty(branch.shape), branch.new_empty(branch.shape if norm_weight is not None else (0,))


def steer_add_rmsnorm(
    branch: torch.Tensor,
    residual: torch.Tensor,
    theta: torch.Tensor,
    gate_w: torch.Tensor | None = None,
    gate_b: torch.Tensor | None = None,
    strength: float | torch.Tensor = 1.0,
    norm_preserve: bool = False,
    norm_weight: torch.Tensor | None = None,
    eps: float = 1e-6,
    weight_offset: float = 0.0,
    cast_before_weight: bool = True,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``new_residual = residual + gated_steer(branch)`` and ``normed = RMSNorm(new_residual)``.

    ``branch`` and ``residual`` are ``[..., D]`` of one dtype and device; theta, gate_w, gate_b,
    strength and norm_preserve are ``gated_steer``'s. ``norm_weight`` [D] (branch's dtype) is the
    following RMSNorm's weight, or None for no norm (``normed`` is then None). Llama-style norms
    (``cast_before_weight=True``, offset 0) round the normalised row before the weight; Gemma-style
    norms scale by ``weight + 1`` in float32 (``cast_before_weight=False, weight_offset=1.0``).
    Returns ``(new_residual, normed)`` in branch's shape and dtype."""
    theta, gate_w, gate_b, s = check_steer_args(branch, theta, gate_w, gate_b, strength, check_finite, _OP)
    if not isinstance(residual, torch.Tensor) or residual.shape != branch.shape:
        _fail("residual", f"a tensor of branch's shape {list(branch.shape)}",
              f"{list(getattr(residual, 'shape', []))}", _OP)
    if residual.dtype != branch.dtype or residual.device != branch.device:
        _fail("residual", f"of branch's dtype {branch.dtype} on {branch.device}",
              f"{residual.dtype} on {residual.device}", _OP)
    d = branch.shape[-1]
    if norm_weight is not None:
        if not isinstance(norm_weight, torch.Tensor) or tuple(norm_weight.shape) != (d,):
            _fail("norm_weight", f"a [D={d}] tensor", f"{list(getattr(norm_weight, 'shape', []))}", _OP)
        if norm_weight.dtype != branch.dtype or norm_weight.device != branch.device:
            _fail("norm_weight", f"of branch's dtype {branch.dtype} on {branch.device}",
                  f"{norm_weight.dtype} on {norm_weight.device}", _OP)
    if needs_grad(branch, residual, theta, gate_w, gate_b, s, norm_weight):
        new_residual = residual + gated_steer(branch, theta, gate_w, gate_b, s.reshape(
            branch.shape[:-1] + (-1,)) if s.dim() == 2 else s, norm_preserve, check_finite=False)
        if norm_weight is None:
            return new_residual, None
        return new_residual, rms_norm(new_residual, norm_weight, eps, weight_offset, cast_before_weight)
    b2 = rows_of(branch)
    new_residual, normed = (_fwd_impl if direct(b2) else _fwd)(
        b2, rows_of(residual), theta, gate_w, gate_b, s, bool(norm_preserve),
        None if norm_weight is None else norm_weight.contiguous(), float(eps), float(weight_offset),
        bool(cast_before_weight))
    return new_residual.reshape(branch.shape), (normed.reshape(branch.shape) if norm_weight is not None else None)
