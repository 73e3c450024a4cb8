"""Vectors from other steering libraries, as ``VectorFile``s of K=1 ungated ``block_out`` entries in
llama.cpp's layer numbering (``gguf``): repeng ``ControlVector`` and steering-vectors ``SteeringVector``
objects."""
from __future__ import annotations

import torch

from .contents import Entry, VectorFile


def from_repeng(control_vector) -> VectorFile:
    """A repeng ``ControlVector``: ``directions[N]`` steers the output of ``model.layers[N]``."""
    dirs = getattr(control_vector, "directions", None)
    if not isinstance(dirs, dict) or not dirs:
        raise ValueError(f"expected a repeng ControlVector with directions, got {type(control_vector).__name__}")
    entries = {("block_out", int(layer)): Entry(torch.as_tensor(v).float().reshape(1, -1))
               for layer, v in sorted(dirs.items())}
    provenance = {"source": "repeng", "model_type": getattr(control_vector, "model_type", None)}
    return VectorFile(entries, attributes=["repeng"], gate_mode="none",
                           provenance={k: v for k, v in provenance.items() if v is not None})


def from_steering_vectors(sv) -> VectorFile:
    """A steering-vectors ``SteeringVector``: its ``decoder_block`` layer N steers the output of
    ``model.layers[N]``. Its other layer types (attention or MLP outputs) are not what steerkit's sites
    mean there, so they are refused."""
    acts = getattr(sv, "layer_activations", None)
    if not isinstance(acts, dict) or not acts:
        raise ValueError(f"expected a steering-vectors SteeringVector, got {type(sv).__name__}")
    if getattr(sv, "layer_type", "decoder_block") != "decoder_block":
        raise ValueError(f"steering-vectors layer_type {sv.layer_type!r}: steerkit converts 'decoder_block' "
                         "vectors (its block_out); steer that site with steerkit's own vectors instead")
    entries = {("block_out", int(layer)): Entry(torch.as_tensor(v).detach().float().cpu().reshape(1, -1))
               for layer, v in sorted(acts.items())}
    return VectorFile(entries, attributes=["steering_vector"], gate_mode="none",
                           provenance={"source": "steering-vectors"})
