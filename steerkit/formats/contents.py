"""What a vector file holds, as every format reads and writes it: ``Entry`` (the tensors of one site and
layer) and ``VectorFile`` (the entries with the attribute names, gate mode, norm preservation and
provenance). ``SteeringVectors`` is built from a ``VectorFile`` and validates it; formats only move it."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Entry:
    """The tensors for one (site, layer)."""

    theta: torch.Tensor
    gate_w: torch.Tensor | None = None
    gate_b: torch.Tensor | None = None

    @property
    def hidden_size(self) -> int:
        return int(self.theta.shape[1])


@dataclass
class VectorFile:
    """The contents of one vector file, before ``SteeringVectors`` checks them."""

    entries: dict  # (site, layer) -> Entry
    attributes: list[str] | None = None
    gate_mode: str = "sigmoid"
    norm_preserve: bool = False
    provenance: dict = field(default_factory=dict)

    @property
    def num_attributes(self) -> int:
        return int(next(iter(self.entries.values())).theta.shape[0])
