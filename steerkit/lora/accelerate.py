"""``accelerate(peft_model)``: the forward of every PEFT ``lora.Linear`` where the fused LoRA linear
computes exactly what PEFT would is swapped, per instance and reversibly; parameters, state-dict
keys and saving stay PEFT's. So is the forward of every gated MLP (``down(act(gate(x)) * up(x))``,
where ``steerkit.models`` says a family has one and a probe on random input agrees with the module's
own forward), which then saves two [tokens, intermediate] tensors a layer instead of four. Modules
where it does not apply keep their own path, and the reason is logged once per reason."""
from __future__ import annotations

import logging
import types
from dataclasses import dataclass, field

import torch

from ..reference import probe_mismatch
from .fused import lora_linear
from .gated_mlp import gated_down

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


def _lora_state(self) -> str | None:
    """None when this PEFT LoRA layer's forward right now is the fused LoRA linear's math."""
    # anything PEFT handles specially (disabled, merged, mixed-adapter batches) goes to PEFT
    if self.disable_adapters or self.merged:
        return "adapters disabled or merged"
    return why_not(self)


def _lora_weights(self):
    a = self.active_adapters[0]
    base = self.base_layer
    return base.weight, base.bias, self.lora_A[a].weight, self.lora_B[a].weight, self.scaling[a]


def _fast_forward(self, x, *args, **kwargs):
    if kwargs.get("adapter_names") is not None or _lora_state(self):
        return self._steerkit_peft_forward(x, *args, **kwargs)
    return lora_linear(x, *_lora_weights(self))


def _down_weights(down):
    """(weight, bias, lora_a, lora_b, scale) of a gated MLP's down projection, or a str saying why the
    fused gated MLP cannot stand in for it right now."""
    from peft.tuners.lora import Linear as LoraLinear

    if "forward" in vars(down) and getattr(vars(down)["forward"], "__func__", None) is not _fast_forward:
        return "the down projection's forward is replaced (steering or another library)"
    if isinstance(down, LoraLinear):
        reason = _lora_state(down)
        return f"down projection: {reason}" if reason else _lora_weights(down)
    if type(down) is torch.nn.Linear and not any(p.requires_grad for p in down.parameters()):
        return down.weight, down.bias, None, None, 1.0
    return f"down projection is {type(down).__name__}, not a frozen nn.Linear or a PEFT LoRA Linear"


def _mlp_weights(parts):
    """The down projection's weights (as ``_down_weights``) when the fused gated MLP may run in place of
    this MLP's forward now, else a str saying why not: something it would skip (hooks on the down
    projection or the activation, global hooks) is there, or the down projection cannot be fused."""
    from torch.nn.modules import module as _module

    for key in ("down", "act"):
        m = parts[key]
        if m._forward_hooks or m._forward_pre_hooks:
            return f"forward hooks on the MLP's {key}"
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return "global forward hooks"
    return _down_weights(parts["down"])


def _fast_mlp_forward(self, x, *args, **kwargs):
    parts = self._steerkit_mlp_parts
    down = _mlp_weights(parts) if not (args or kwargs) else "extra arguments"
    if isinstance(down, str):
        return self._steerkit_mlp_forward(x, *args, **kwargs)
    return gated_down(parts["gate"](x), parts["up"](x), parts["act"], *down)


def _unfusable(mlp, parts) -> str | None:
    """None when this MLP can be fused, else why not. Its activation must be a pure elementwise
    function, and its own forward and the fused one must agree on random rows: that probe is what
    stands between a transformers release that changes the MLP's math and a silently wrong fusion."""
    act = parts["act"]
    if getattr(act, "inplace", False) or any(True for _ in act.parameters()):
        return f"the activation ({type(act).__name__}) works in place or has parameters"
    down = _mlp_weights(parts)
    if isinstance(down, str):
        return down
    w = down[0]
    if w.device.type == "meta" or not w.dtype.is_floating_point:
        return f"weights are {w.dtype} on {w.device.type}"
    width = getattr(getattr(parts["gate"], "base_layer", parts["gate"]), "in_features", None)
    if width is None:
        return f"gate projection is {type(parts['gate']).__name__}, with no in_features"
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(3, width, generator=g).to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        want = mlp(x)
        got = gated_down(parts["gate"](x), parts["up"](x), act, *down)
    err = probe_mismatch(got, want)
    if err is None:
        return None
    return f"its forward is not down(act(gate(x)) * up(x)) (relative difference {err:.1e} on a probe)"


@dataclass
class Accelerated:
    """Which LoRA layers run fused, which do not and why; ``remove()`` restores PEFT's forward."""
    fused: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # module name -> reason
    mlps: list[str] = field(default_factory=list)  # gated MLPs fused into their down projection
    mlps_skipped: dict[str, str] = field(default_factory=dict)  # MLP (or model) name -> reason
    _modules: list = field(default_factory=list, repr=False)

    def remove(self) -> None:
        for m in self._modules:
            for own in ("_steerkit_peft_forward", "_steerkit_mlp_forward"):
                if "forward" in m.__dict__ and own in m.__dict__:
                    del m.forward
                    delattr(m, own)
            m.__dict__.pop("_steerkit_mlp_parts", None)
        self._modules.clear()
        self.fused.clear()
        self.mlps.clear()


def accelerate(model, mlp: bool = True) -> Accelerated:
    """Swap in the fused LoRA linear on every PEFT LoRA ``Linear`` of ``model`` it applies to, and with
    ``mlp`` the fused gated MLP on every gated MLP it applies to (on the CPU it gives the same bits as
    the fused LoRA linear alone, keeping half the intermediate tensors)."""
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
    if mlp:
        _accelerate_mlps(model, out)
    for what, skipped in (("LoRA layer(s) left on PEFT's path", out.skipped),
                          ("MLP(s) left unfused", out.mlps_skipped)):
        for reason in sorted(set(skipped.values())):
            n = sum(r == reason for r in skipped.values())
            log.info("steerkit.lora: %d %s: %s", n, what, reason)
    return out


def _accelerate_mlps(model, out: Accelerated) -> None:
    from .. import models

    try:
        layout = models.resolve(model)
    except ValueError as e:
        out.mlps_skipped["model"] = f"no layout for its family ({str(e).splitlines()[0]})"
        return
    if layout.spec.gated_mlp is None:
        out.mlps_skipped["model"] = f"{layout.spec.family} has no gated MLP in separate modules"
        return
    names = {id(m): n for n, m in model.named_modules()}
    for i in range(layout.num_layers):
        parts = layout.gated_mlp(i)
        if parts is None:
            out.mlps_skipped[f"layer {i}"] = "its MLP is not where the family's layout says"
            continue
        mlp = parts.pop("mlp")
        name = names.get(id(mlp), f"layer {i} mlp")
        if "forward" in vars(mlp):
            out.mlps_skipped[name] = "its forward is already replaced (steering or another library)"
            continue
        reason = _unfusable(mlp, parts)
        if reason:
            out.mlps_skipped[name] = reason
            continue
        mlp._steerkit_mlp_parts = parts
        mlp._steerkit_mlp_forward = mlp.forward
        mlp.forward = types.MethodType(_fast_mlp_forward, mlp)
        out.mlps.append(name)
        out._modules.append(mlp)
