"""The down projection of a gated MLP, ``down(act(gate) * up)``, as one autograd function: it saves
``gate`` and ``up`` and recomputes the product in the backward. Run as separate modules, autograd keeps
four [tokens, intermediate] tensors a layer (the activation's input, its output, ``up`` and the product
the down projection's LoRA reads); this keeps two. ``act`` is any elementwise module: its derivative
is taken by autograd on the recomputed activation, so no activation's formula is written here."""
from __future__ import annotations

import torch

from ..ops.two_gemm import two_gemm


class GatedDownFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate, up, weight, bias, lora_a, lora_b, act, scale: float):
        h = act(gate) * up
        if lora_a is None:
            y = torch.nn.functional.linear(h, weight, bias)
            ha = None
        else:
            ha = h @ lora_a.t()                                              # [N, r]
            y = two_gemm(h, weight.t(), ha * scale, lora_b.t(), bias)
        ctx.save_for_backward(gate, up, weight, lora_a, lora_b, ha)
        ctx.act, ctx.scale = act, scale
        return y

    @staticmethod
    def backward(ctx, dy):
        gate, up, weight, lora_a, lora_b, ha = ctx.saved_tensors
        with torch.enable_grad():
            g = gate.detach().requires_grad_(True)
            a = ctx.act(g)
        d_a = d_b = None
        if lora_a is None:
            dh = dy @ weight
        else:
            s = ctx.scale
            dxa = (dy @ lora_b).mul_(s)                                      # [N, r]
            if ctx.needs_input_grad[4]:
                d_a = dxa.t() @ (a.detach() * up)                            # the product, recomputed
            if ctx.needs_input_grad[5]:
                d_b = (dy.t() @ ha).mul_(s)
            dh = two_gemm(dy, weight, dxa, lora_a)
        d_up = dh * a.detach() if ctx.needs_input_grad[1] else None
        d_gate = None
        if ctx.needs_input_grad[0]:
            d_gate, = torch.autograd.grad(a, g, dh.mul_(up))
        return d_gate, d_up, None, None, d_a, d_b, None, None


def gated_down(gate, up, act, weight, bias, lora_a=None, lora_b=None, scale: float = 1.0):
    """``down(act(gate) * up)`` for gate and up of any leading shape; ``lora_a``/``lora_b`` None for a
    down projection without LoRA. The base weight stays frozen."""
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError("weight/bias: the fused gated MLP keeps the down projection frozen, "
                         "but it requires grad")
    if gate.shape != up.shape:
        raise ValueError(f"gate/up: expected the same shape, got {tuple(gate.shape)} and {tuple(up.shape)}")
    lead = gate.shape[:-1]
    flat = (gate.reshape(-1, gate.shape[-1]), up.reshape(-1, up.shape[-1]))
    if lora_a is not None:
        lora_a, lora_b = lora_a.to(gate.dtype), lora_b.to(gate.dtype)
    y = GatedDownFn.apply(*flat, weight, bias, lora_a, lora_b, act, float(scale))
    return y.reshape(*lead, weight.shape[0])
