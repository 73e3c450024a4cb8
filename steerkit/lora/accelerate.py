"""``accelerate(peft_model)``: the forward of every PEFT ``lora.Linear`` where the fused LoRA linear
computes exactly what PEFT would is swapped, per instance and reversibly; parameters, state-dict
keys and saving stay PEFT's. Layers where it does not apply keep PEFT's own path, and the reason is
logged once per reason."""
from __future__ import annotations

import logging
import types
from dataclasses import dataclass, field

import torch

from .fused import lora_linear

log = logging.getLogger("steerkit.lora")


def why_not(module) -> str | None:
    """None when the fused path computes this PEFT LoRA layer exactly, else the reason it does not."""
    active = [a for a in module.active_adapters if a in module.lora_A]
    if len(active) != 1:
        return f"{len(active)} active adapters (the fused path takes one)"
    a = active[0]
    if not isinstance(module.base_layer, torch.nn.Linear):
        return f"base layer is {type(module.base_layer).__name__}, not nn.Linear (quantized?)"
    if not isinstance(module.lora_dropout[a], torch.nn.Identity):
        return "LoRA dropout > 0"
    if getattr(module, "use_dora", {}).get(a, False) or a in getattr(module, "lora_variant", {}):
        return "DoRA or another LoRA variant"
    if getattr(module.lora_B[a], "bias", None) is not None:
        return "lora_bias"
    if getattr(module, "fan_in_fan_out", False):
        return "fan_in_fan_out weights"
    base = module.base_layer
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return "the base layer trains (bias='all' or unfrozen weights)"
    return None


def _fast_forward(self, x, *args, **kwargs):
    # anything PEFT handles specially (disabled, merged, mixed-adapter batches) goes to PEFT
    if self.disable_adapters or self.merged or kwargs.get("adapter_names") is not None or why_not(self):
        return self._steerkit_peft_forward(x, *args, **kwargs)
    a = self.active_adapters[0]
    base = self.base_layer
    return lora_linear(x, base.weight, base.bias, self.lora_A[a].weight, self.lora_B[a].weight, self.scaling[a])


@dataclass
class Accelerated:
    """Which LoRA layers run fused, which do not and why; ``remove()`` restores PEFT's forward."""
    fused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # module name -> reason
    _modules: list = field(default_factory=list, repr=False)

    def remove(self) -> None:
        for m in self._modules:
            if "forward" in m.__dict__ and hasattr(m, "_steerkit_peft_forward"):
                del m.forward
                del m._steerkit_peft_forward
        self._modules.clear()
        self.fused.clear()


def accelerate(model) -> Accelerated:
    """Swap in the fused LoRA linear on every PEFT LoRA ``Linear`` of ``model`` it applies to."""
    from peft.tuners.lora import Linear as LoraLinear

    out = Accelerated()
    for name, m in model.named_modules():
        if not isinstance(m, LoraLinear) or "_steerkit_peft_forward" in m.__dict__:
            continue
        reason = why_not(m)
        if reason:
            out.skipped[name] = reason
            continue
        m._steerkit_peft_forward = m.forward
        m.forward = types.MethodType(_fast_forward, m)
        out.fused.append(name)
        out._modules.append(m)
    for reason in sorted(set(out.skipped.values())):
        n = sum(r == reason for r in out.skipped.values())
        log.info("steerkit.lora: %d LoRA layer(s) left on PEFT's path: %s", n, reason)
    return out
