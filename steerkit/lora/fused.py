"""The fused LoRA linear ``y = x Wᵀ (+ bias) + s·(x Aᵀ) Bᵀ`` with W frozen, as one autograd function.
The rank-r product ``x Aᵀ`` is formed first and the LoRA branch is accumulated into the base output
in place, so no ``[tokens, out]`` temporary is made in the forward or the backward; the backward
saves only x and ``x Aᵀ`` and never computes dW."""
from __future__ import annotations

import torch

from ..ops.two_gemm import two_gemm


class LoraLinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, lora_a, lora_b, scale: float):
        xa = x @ lora_a.t()                                              # [N, r]
        y = two_gemm(x, weight.t(), xa * scale, lora_b.t(), bias)       # one kernel, or addmm in place
        ctx.save_for_backward(x, weight, lora_a, lora_b, xa)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, lora_a, lora_b, xa = ctx.saved_tensors
        s = ctx.scale
        dxa = (dy @ lora_b).mul_(s)                                      # [N, r]
        d_a = dxa.t() @ x if ctx.needs_input_grad[3] else None
        d_b = (dy.t() @ xa).mul_(s) if ctx.needs_input_grad[4] else None
        dx = two_gemm(dy, weight, dxa, lora_a) if ctx.needs_input_grad[0] else None
        return dx, None, None, d_a, d_b, None


def lora_linear(x, weight, bias, lora_a, lora_b, scale: float):
    """Any leading shape; the adapters are cast to x's dtype (their gradients come back in theirs)."""
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("weight/bias: the fused LoRA linear keeps the base layer frozen, but it requires grad")
    lead = x.shape[:-1]
    y = LoraLinearFn.apply(x.reshape(-1, x.shape[-1]), weight, bias, lora_a.to(x.dtype), lora_b.to(x.dtype),
                           float(scale))
    return y.reshape(*lead, weight.shape[0])
