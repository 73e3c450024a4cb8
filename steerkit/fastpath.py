"""Which path steers each patched (site, layer), and the two fast paths beside the site hooks.

  attn_out, mlp_out  "fused": this decoder layer's forward is replaced, on the instance only, by
                     one that calls the same submodules in the same order but does the steer and
                     the residual add (and, for attn_out, the post-attention RMSNorm) as one
                     ``steer_add_rmsnorm`` call. Pre-norm, RMSNorm, Llama-shaped layers only.
                     The layer's arguments are passed through to its attention as the layer passes
                     them, whatever their names (``steerkit.hf`` reads the signature); a layer is
                     refused when it has a submodule the mirrored sequence would skip or an argument
                     that changes the math (``hf.CHANGES_THE_MATH``), and the reason names it.
  attn_heads         "folded": the attention output projection's forward is replaced by
                     ``steer_linear``: the steer folded through o_proj. A plain ``nn.Linear`` only.
  otherwise          "hook": ``steerkit.sites`` hooks running ``gated_steer``.

``plan`` says, without touching the model, which path each key would take and why not a fast one;
``patch(fused=...)`` installs from it. Removing restores the instance's own ``forward``.
"""
from __future__ import annotations

import torch
from torch import nn

from . import hf
from .models import ModelLayout
from .ops import steer_add_rmsnorm, steer_linear
from .ops.steer_linear import fold

# family -> (weight offset, round the normalised row before the weight): how its RMSNorm computes
_NORM_STYLE = {"llama": (0.0, True), "mistral": (0.0, True), "qwen2": (0.0, True), "qwen3": (0.0, True),
               "phi3": (0.0, True), "gemma": (1.0, False)}
# the submodules the fused forward calls, in order; parameter-free ones (dropout at p=0, activations) may
# be there too
_CALLED = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")

HOOK, FUSED, FOLDED = "hook", "fused", "folded"


def _norm_eps(norm: nn.Module) -> float | None:
    for name in ("variance_epsilon", "eps"):
        v = getattr(norm, name, None)
        if isinstance(v, float):
            return v
    return None


def _owner_keys(mod: nn.Module) -> set | None:
    """The keys served by the steerkit fast path whose forward replaced ``mod``'s, or None."""
    owner = getattr(vars(mod).get("forward"), "__self__", None)
    return owner.keys() if isinstance(owner, (FusedLayer, FoldedProjection)) else None


def _forward_taken(mod: nn.Module, released: set) -> bool:
    """Whether ``mod.forward`` is replaced on the instance by something that stays after this patch
    (another library, or a steerkit path serving keys that are not being replaced)."""
    if "forward" not in vars(mod):
        return False
    keys = _owner_keys(mod)
    return keys is None or not keys <= released


def why_not_fused(layout: ModelLayout, layer: int, released: set = frozenset()) -> str | None:
    """None when this decoder layer can take the fused forward, else why not. ``released``: keys a
    replacing patch is about to remove (their fast path does not count as taking the layer)."""
    family = layout.spec.family
    if family not in _NORM_STYLE:
        return f"no fused forward for {family} layers (only {', '.join(sorted(_NORM_STYLE))})"
    mod = layout.layers[layer]
    for name in _CALLED:
        if not isinstance(getattr(mod, name, None), nn.Module):
            return f"the decoder layer has no {name} module"
    for name, child in mod.named_children():
        if name not in _CALLED and any(True for _ in child.parameters()):
            return (f"{type(mod).__name__} has a {name} ({type(child).__name__}) that the fused forward "
                    f"({' -> '.join(_CALLED)}) would not call")
    sig = hf.layer_signature(mod)
    if sig.changes_the_math:
        arg = sig.changes_the_math[0]
        return f"{type(mod).__name__}.forward takes {arg} ({hf.CHANGES_THE_MATH[arg]}), which the fused forward omits"
    if _forward_taken(mod, released):
        return "this decoder layer's forward is already replaced (another steerkit handle or library)"
    norm = mod.post_attention_layernorm
    if not type(norm).__name__.endswith("RMSNorm") or not isinstance(getattr(norm, "weight", None), torch.Tensor):
        return f"post_attention_layernorm is a {type(norm).__name__}, not the family's RMSNorm"
    if _norm_eps(norm) is None:
        return "cannot read the RMSNorm's epsilon"
    for name in ("resid_attn_dropout", "resid_mlp_dropout"):
        p = getattr(getattr(mod, name, None), "p", 0.0)
        if p > 0:
            return f"{name} has p={p} (the fused add has no dropout)"
    return None


def why_not_folded(layout: ModelLayout, layer: int, released: set = frozenset()) -> str | None:
    """None when attn_heads steering at this layer can be folded through o_proj, else why not."""
    if layout.spec.conv1d:
        return "the output projection is a GPT-2 Conv1D"
    proj = layout.attn_out_proj(layer)
    if type(proj) is not nn.Linear:
        return (f"the attention output projection is a {type(proj).__name__}, not a plain nn.Linear: "
                "a LoRA adapter, quantization or wrapper would be bypassed by the fold")
    if _forward_taken(proj, released):
        return "the output projection's forward is already replaced (another steerkit handle or library)"
    return None


def plan(layout: ModelLayout, keys, fused: bool | str = "auto",
         released: set = frozenset()) -> dict[tuple[str, int], tuple[str, str]]:
    """key -> (path, detail): the path each (site, layer) takes and, for a hook, why not a fast path.
    ``released``: keys already steered that this patch replaces (``patch(replace=True)``)."""
    out = {}
    for site, layer in keys:
        if not fused:
            out[(site, layer)] = (HOOK, "fast paths switched off (fused=False)")
            continue
        if site in ("attn_out", "mlp_out"):
            why = why_not_fused(layout, layer, released)
            after = "residual add + post-attention RMSNorm" if site == "attn_out" else "residual add"
            out[(site, layer)] = (HOOK, why) if why else (FUSED, f"steer + {after} in one kernel")
        elif site == "attn_heads":
            why = why_not_folded(layout, layer, released)
            out[(site, layer)] = (HOOK, why) if why else (FOLDED, "steer folded through o_proj")
        else:
            out[(site, layer)] = (HOOK, "block_out is the layer's output: nothing after it to fuse with")
    return out


class FusedLayer:
    """The fused forward of one decoder layer, serving its attn_out and/or mlp_out keys."""

    def __init__(self, steering, layout: ModelLayout, layer: int):
        self.steering = steering
        self.layer = layout.layers[layer]
        self.offset, self.cast = _NORM_STYLE[layout.spec.family]
        # names for positional arguments after the hidden states; a tuple result where the layer returns one
        self.signature = hf.layer_signature(self.layer)
        self.sites: dict[str, tuple[str, int]] = {}
        self.layer.forward = self.forward

    def keys(self) -> set:
        return set(self.sites.values())

    def add(self, key: tuple[str, int]) -> "_Removable":
        self.sites[key[0]] = key
        return _Removable(lambda: self._discard(key[0]))

    def _discard(self, site: str) -> None:
        self.sites.pop(site, None)
        if not self.sites and vars(self.layer).get("forward") == self.forward:
            del self.layer.forward

    def _steer(self, key, branch, residual, norm: nn.Module | None):
        s = self.steering
        e = s.entry(key)
        weight = None if norm is None else norm.weight
        if weight is not None and weight.dtype != branch.dtype:  # e.g. float32 norms in a bf16 model
            new = residual + s.apply(key, branch)
            return new, norm(new)
        return steer_add_rmsnorm(branch, residual, e.theta, e.gate_w, e.gate_b, s.row_strength(key, branch),
                                 s.norm_preserve, weight, _norm_eps(norm) if norm is not None else 0.0,
                                 self.offset, self.cast, check_finite=False)

    def forward(self, *args, **kwargs):
        """The layer's own sequence (input norm, attention, add, post-attention norm, MLP, add), with
        every argument passed on to the attention as the layer passes it."""
        hidden_states = args[0] if args else kwargs.pop(self.signature.first)
        kwargs.update(zip(self.signature.positional, args[1:]))
        m = self.layer
        residual = hidden_states
        x = m.input_layernorm(hidden_states)
        x, attn_weights = m.self_attn(hidden_states=x, **kwargs)
        key = self.sites.get("attn_out")
        if key is not None:
            residual, x = self._steer(key, x, residual, m.post_attention_layernorm)
        else:
            residual = residual + x
            x = m.post_attention_layernorm(residual)
        x = m.mlp(x)
        key = self.sites.get("mlp_out")
        out = self._steer(key, x, residual, None)[0] if key is not None else residual + x
        if not self.signature.returns_tuple:
            return out
        return (out, attn_weights) if hf.wants_attentions(kwargs) else (out,)


class FoldedProjection:
    """attn_heads steering folded through this layer's o_proj (a plain nn.Linear)."""

    def __init__(self, steering, key: tuple[str, int], proj: nn.Linear):
        self.steering, self.key, self.proj = steering, key, proj
        self._folded = None
        self._version = None
        self.folded()  # now, so a compiled graph finds it made rather than making it (a re-trace)
        proj.forward = self.forward

    def keys(self) -> set:
        return {self.key}

    def folded(self) -> torch.Tensor:
        """θ Wᵀ, recomputed when o_proj's weight or the vectors change in place (eager mode only:
        under torch.compile the fold made before compiling is used)."""
        theta = self.steering.entry(self.key).theta
        w = self.proj.weight
        compiling = torch.compiler.is_compiling()
        if self._folded is None or (not compiling and self._version != (w._version, theta._version, w.data_ptr())):
            with torch.no_grad():
                self._folded = fold(w, theta)
            self._version = (w._version, theta._version, w.data_ptr())
        return self._folded

    def forward(self, x):
        w, b = self.proj.weight, self.proj.bias
        if x.dtype != w.dtype:  # autocast: the projection runs in another dtype than the vectors
            return nn.functional.linear(self.steering.apply(self.key, x), w, b)
        e = self.steering.entry(self.key)
        return steer_linear(x, w, b, e.theta, e.gate_w, e.gate_b, self.steering.row_strength(self.key, x),
                            self.steering.norm_preserve, folded=self.folded(), check_finite=False)

    def remove(self) -> None:
        if vars(self.proj).get("forward") == self.forward:
            del self.proj.forward


class _Removable:
    def __init__(self, fn):
        self._fn = fn

    def remove(self) -> None:
        if self._fn is not None:
            self._fn()
            self._fn = None
