"""The architecture registry: where each model family keeps its decoder layers, its attention and MLP
output projections, and its final norm.

Paths are relative to the HF base model (``model.base_model``: the ``LlamaModel`` inside a
``LlamaForCausalLM``), so a bare base model and a causal-LM wrapper resolve alike. For a family not
listed, pass an ``ArchSpec`` with the module paths by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import hf
from .hf import transformers_version


@dataclass(frozen=True)
class GatedMlp:
    """Where a decoder layer keeps an MLP computing ``down(act(gate(x)) * up(x))`` (SwiGLU, GeGLU), by
    attribute name: the LoRA accelerator fuses its product into the down projection. Every use is
    also checked numerically against the module's own forward (``steerkit.lora``)."""

    path: str = "mlp"
    gate: str = "gate_proj"
    up: str = "up_proj"
    down: str = "down_proj"
    act: str = "act_fn"


@dataclass(frozen=True)
class ArchSpec:
    """Module paths of one family. ``layers`` is from the base model; the projections are from a
    decoder layer. ``conv1d``: projections are GPT-2 ``Conv1D`` (weight [in, out])."""

    family: str
    layers: str
    attn_out_proj: str
    mlp_out_proj: str
    final_norm: str | None
    norm_kind: str = "rms"  # "rms" or "layer": which fused residual+norm kernels can apply
    conv1d: bool = False
    packs: bool = True  # honours packed sequences (restarting position_ids, no mask); checked in the tests
    gated_mlp: GatedMlp | None = None  # None: the MLP is not down(act(gate(x)) * up(x)) in separate modules


_LLAMA_LIKE = dict(layers="layers", attn_out_proj="self_attn.o_proj", mlp_out_proj="mlp.down_proj", final_norm="norm")
_GATED = dict(_LLAMA_LIKE, gated_mlp=GatedMlp())

REGISTRY: dict[str, ArchSpec] = {
    "llama": ArchSpec("llama", **_GATED),
    "mistral": ArchSpec("mistral", **_GATED),
    "qwen2": ArchSpec("qwen2", **_GATED),
    "qwen3": ArchSpec("qwen3", **_GATED),
    "gemma": ArchSpec("gemma", **_GATED),
    "gemma2": ArchSpec("gemma2", **_GATED),
    "gemma3_text": ArchSpec("gemma3_text", **_GATED),  # Gemma3ForCausalLM, the text-only Gemma 3
    "phi3": ArchSpec("phi3", **_LLAMA_LIKE),  # its MLP projects gate and up in one gate_up_proj
    # GPT-2 honours restarting position_ids in a packed row from transformers 5 (measured: 5.23 exact,
    # 4.53.3 not)
    "gpt2": ArchSpec("gpt2", "h", "attn.c_proj", "mlp.c_proj", "ln_f", norm_kind="layer", conv1d=True,
                     packs=transformers_version()[0] >= 5),
    "gpt_neox": ArchSpec("gpt_neox", "layers", "attention.dense", "mlp.dense_4h_to_h", "final_layer_norm",
                         norm_kind="layer"),
    # OPT derives positions from the attention mask and attends across packed sequences
    "opt": ArchSpec("opt", "decoder.layers", "self_attn.out_proj", "fc2", "decoder.final_layer_norm",
                    norm_kind="layer", packs=False),
}


def _unknown_architecture(model_type) -> ValueError:
    return ValueError(
        f"steerkit has no layout for architecture {model_type!r}. Supported families: "
        f"{', '.join(sorted(REGISTRY))}. For another decoder-only model, pass its module paths by hand, e.g.\n"
        "    spec = steerkit.models.ArchSpec(family='mymodel', layers='layers', "
        "attn_out_proj='self_attn.o_proj', mlp_out_proj='mlp.down_proj', final_norm='norm')\n"
        "    steerkit.models.resolve(model, spec)   # or steer(model, vecs, arch=spec)\n"
        "(layers: from model.base_model to the list of decoder layers; projections: from one layer)"
    )


def spec_for(model: nn.Module) -> ArchSpec:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in REGISTRY:
        raise _unknown_architecture(model_type)
    return REGISTRY[model_type]


def _get(root: nn.Module, path: str, what: str, spec: ArchSpec) -> nn.Module:
    mod = root
    for part in path.split("."):
        nxt = getattr(mod, part, None)
        if nxt is None and isinstance(mod, (nn.ModuleList, nn.Sequential)) and part.isdigit():
            nxt = mod[int(part)]
        if not isinstance(nxt, nn.Module):
            raise ValueError(f"{spec.family}: {what} path {path!r} does not lead to a module "
                             f"(stopped at {part!r} in {type(mod).__name__})")
        mod = nxt
    return mod


def _features(proj: nn.Module, conv1d: bool) -> tuple[int, int]:
    """(in_features, out_features) of a Linear or a GPT-2 Conv1D."""
    w = getattr(proj, "weight", None)
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise ValueError(f"expected a linear projection with a 2-D weight, got {type(proj).__name__}")
    return (int(w.shape[0]), int(w.shape[1])) if conv1d else (int(w.shape[1]), int(w.shape[0]))


@dataclass
class ModelLayout:
    """The resolved modules of one model instance."""

    spec: ArchSpec
    layers: nn.ModuleList
    final_norm: nn.Module | None
    hidden_size: int
    attn_heads_size: int  # width of the attention output projection's input (heads × head_dim)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def attn_out_proj(self, layer: int) -> nn.Module:
        return _get(self.layers[layer], self.spec.attn_out_proj, "attn_out_proj", self.spec)

    def mlp_out_proj(self, layer: int) -> nn.Module:
        return _get(self.layers[layer], self.spec.mlp_out_proj, "mlp_out_proj", self.spec)

    def gated_mlp(self, layer: int) -> dict[str, nn.Module] | None:
        """This layer's gated MLP and its parts (keys mlp, gate, up, down, act), or None where the family
        has none or a part is missing."""
        g = self.spec.gated_mlp
        if g is None:
            return None
        try:
            mlp = _get(self.layers[layer], g.path, "gated_mlp", self.spec)
            parts = {k: _get(mlp, getattr(g, k), f"gated_mlp.{k}", self.spec)
                     for k in ("gate", "up", "down", "act")}
        except ValueError:
            return None
        return {"mlp": mlp, **parts}

    def site_size(self, site: str) -> int:
        """The width D of the activation at a site."""
        return self.attn_heads_size if site == "attn_heads" else self.hidden_size


def resolve(model: nn.Module, spec: ArchSpec | None = None) -> ModelLayout:
    """Finds the decoder layers and projections of ``model`` (a registry family, or ``spec``)."""
    spec = spec or spec_for(model)
    if callable(getattr(model, "get_base_model", None)):  # a PEFT model: find the wrapped transformer's layers
        model = model.get_base_model()
    base = hf.base_model(model)
    layers = _get(base, spec.layers, "layers", spec)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"{spec.family}: {spec.layers!r} is not a non-empty ModuleList of decoder layers")
    final_norm = None
    if spec.final_norm:
        try:
            final_norm = _get(base, spec.final_norm, "final_norm", spec)
        except ValueError:
            final_norm = None  # some checkpoints (OPT-350m) have no final norm
    probe = ModelLayout(spec, layers, final_norm, 0, 0)
    attn_in, attn_out = _features(probe.attn_out_proj(0), spec.conv1d)
    _, mlp_out = _features(probe.mlp_out_proj(0), spec.conv1d)
    if attn_out != mlp_out:
        raise ValueError(f"{spec.family}: attention output ({attn_out}) and MLP output ({mlp_out}) widths differ; "
                         "check the module paths")
    probe.hidden_size, probe.attn_heads_size = attn_out, attn_in
    return probe
