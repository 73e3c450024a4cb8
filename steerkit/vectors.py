"""``SteeringVectors``: the steering parameters for a model, per (site, layer).

Each entry holds theta [K,D], and for gated steering gate_w [K,D] and gate_b [K]. K (the number of
attributes) is the same for every entry; D may differ by site. Files are read and written by
``steerkit.formats`` (steerkit's ``.safetensors``, whose metadata carries the attribute names, gate
mode, norm preservation, provenance and a format version; llama.cpp's ``.gguf`` control vectors).
Loading never unpickles anything, and validates everything before returning.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Mapping

import torch

from . import formats
from .formats.contents import Entry, VectorFile
from .formats.safetensors import FORMAT, FORMAT_VERSION
from .sites import SITES

GATE_MODES = ("sigmoid", "none")
# Entry, FORMAT and FORMAT_VERSION: defined by steerkit.formats, importable from here as before
__all__ = ["Entry", "FORMAT", "FORMAT_VERSION", "GATE_MODES", "SteeringVectors"]


def _check_site(site) -> str:
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; expected one of {', '.join(SITES)}")
    return site


def _check_layer(layer) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"layer must be a non-negative int (0-based decoder layer index), got {layer!r}")
    return layer


def _check_entry(where: str, e: Entry, gate_mode: str) -> int:
    """Validates one entry; returns its K."""
    th = e.theta
    if not isinstance(th, torch.Tensor) or th.dim() != 2 or th.shape[0] < 1 or th.shape[1] < 1:
        raise ValueError(f"{where}: theta must be a [K, D] tensor, got {getattr(th, 'shape', type(th).__name__)}")
    if not th.dtype.is_floating_point:
        raise ValueError(f"{where}: theta must be floating point, got {th.dtype}")
    k, d = th.shape
    if gate_mode == "sigmoid":
        if e.gate_w is None:
            raise ValueError(f"{where}: gate mode 'sigmoid' needs gate_w [K={k}, D={d}], which is missing")
        if tuple(e.gate_w.shape) != (k, d):
            raise ValueError(f"{where}: gate_w must have theta's shape [{k}, {d}], got {list(e.gate_w.shape)}")
        if e.gate_b is not None and tuple(e.gate_b.shape) != (k,):
            raise ValueError(f"{where}: gate_b must have shape [{k}], got {list(e.gate_b.shape)}")
    elif e.gate_w is not None or e.gate_b is not None:
        raise ValueError(f"{where}: gate mode 'none' takes no gate_w/gate_b")
    for name in ("gate_w", "gate_b"):
        t = getattr(e, name)
        if t is not None and not (isinstance(t, torch.Tensor) and t.dtype.is_floating_point):
            raise ValueError(f"{where}: {name} must be a floating-point tensor, got "
                             f"{getattr(t, 'dtype', type(t).__name__)} (steerkit never casts it silently)")
    for name in ("theta", "gate_w", "gate_b"):
        t = getattr(e, name)
        if t is not None and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{where}: {name} contains NaN or Inf")
    return k


class SteeringVectors:
    """Steering vectors for a set of (site, layer) places, K attributes each.

    >>> vecs = SteeringVectors.from_tensors(theta, site="attn_heads", layer=14, gate_w=w, gate_b=b,
    ...                                     attributes=["truthful", "polite"])
    >>> vecs.save("vectors.safetensors"); SteeringVectors.load("vectors.safetensors")
    """

    def __init__(self, entries: Mapping[tuple[str, int], Entry], attributes: list[str] | None = None,
                 gate_mode: str = "sigmoid", norm_preserve: bool = False, provenance: dict | None = None):
        if gate_mode not in GATE_MODES:
            raise ValueError(f"gate_mode must be one of {GATE_MODES}, got {gate_mode!r}")
        if not entries:
            raise ValueError("SteeringVectors needs at least one (site, layer) entry")
        checked: dict[tuple[str, int], Entry] = {}
        k_seen = None
        for key, e in entries.items():
            if not (isinstance(key, tuple) and len(key) == 2):
                raise ValueError(f"entry keys are (site, layer) pairs, got {key!r}")
            site, layer = _check_site(key[0]), _check_layer(key[1])
            k = _check_entry(f"{site} layer {layer}", e, gate_mode)
            if k_seen is not None and k != k_seen:
                raise ValueError(f"{site} layer {layer} has K={k} attributes but other entries have K={k_seen}")
            k_seen = k
            checked[(site, layer)] = e
        if attributes is None:
            attributes = [f"attr{i}" for i in range(k_seen)]
        attributes = [str(a) for a in attributes]
        if len(attributes) != k_seen:
            raise ValueError(f"{len(attributes)} attribute names given for K={k_seen} vectors")
        if len(set(attributes)) != len(attributes):
            raise ValueError(f"attribute names must be distinct, got {attributes}")
        self._entries = dict(sorted(checked.items(), key=lambda kv: (SITES.index(kv[0][0]), kv[0][1])))
        self.attributes = attributes
        self.gate_mode = gate_mode
        self.norm_preserve = bool(norm_preserve)
        self.provenance = dict(provenance or {})
        json.dumps(self.provenance)  # provenance must be JSON: it travels in the file's metadata

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_tensors(cls, theta: torch.Tensor, site: str, layer: int, gate_w: torch.Tensor | None = None,
                     gate_b: torch.Tensor | None = None, **kwargs) -> "SteeringVectors":
        """One (site, layer). Gate mode defaults to 'sigmoid' when gate_w is given, else 'none'."""
        kwargs.setdefault("gate_mode", "sigmoid" if gate_w is not None else "none")
        return cls({(site, layer): Entry(theta, gate_w, gate_b)}, **kwargs)

    @classmethod
    def from_repeng(cls, control_vector) -> "SteeringVectors":
        """A repeng ``ControlVector`` (steers as repeng's ``ControlModel`` does at coefficient = strength)."""
        from .formats.converters import from_repeng
        return cls.from_contents(from_repeng(control_vector))

    @classmethod
    def from_steering_vectors(cls, steering_vector) -> "SteeringVectors":
        """A steering-vectors ``SteeringVector`` (steers as its ``apply(multiplier=strength)`` does)."""
        from .formats.converters import from_steering_vectors
        return cls.from_contents(from_steering_vectors(steering_vector))

    @classmethod
    def from_dict(cls, tensors: Mapping, **kwargs) -> "SteeringVectors":
        """From ``{(site, layer) or "site:layer": tensor theta or {"theta", "gate_w"?, "gate_b"?}}``."""
        entries = {}
        gated = False
        for key, value in tensors.items():
            if isinstance(key, str):
                site, _, layer = key.partition(":")
                if not layer.isdigit():
                    raise ValueError(f"dict keys are (site, layer) or 'site:layer', got {key!r}")
                key = (site, int(layer))
            if isinstance(value, torch.Tensor):
                value = {"theta": value}
            unknown = set(value) - {"theta", "gate_w", "gate_b"}
            if unknown or "theta" not in value:
                raise ValueError(f"entry {key}: expected keys theta, gate_w, gate_b; got {sorted(value)}")
            gated |= value.get("gate_w") is not None
            entries[key] = Entry(value["theta"], value.get("gate_w"), value.get("gate_b"))
        kwargs.setdefault("gate_mode", "sigmoid" if gated else "none")
        return cls(entries, **kwargs)

    # -- access ---------------------------------------------------------------------------------
    @property
    def num_attributes(self) -> int:
        return len(self.attributes)

    def keys(self) -> list[tuple[str, int]]:
        return list(self._entries)

    def __getitem__(self, key: tuple[str, int]) -> Entry:
        try:
            return self._entries[key]
        except KeyError:
            raise KeyError(f"no vectors for {key}; have {self.keys()}") from None

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        places = ", ".join(f"{s}@{l}" for s, l in self._entries)
        return (f"SteeringVectors(K={self.num_attributes} {self.attributes}, gate_mode={self.gate_mode!r}, "
                f"norm_preserve={self.norm_preserve}, at [{places}])")

    def to(self, device=None, dtype=None) -> "SteeringVectors":
        """A copy with theta/gate_w moved/cast (gate_b follows the device and stays float32)."""
        def mv(t, cast=True):
            return None if t is None else t.to(device=device, dtype=dtype if cast else torch.float32)
        entries = {k: Entry(mv(e.theta), mv(e.gate_w), mv(e.gate_b, cast=False)) for k, e in self._entries.items()}
        return SteeringVectors(entries, self.attributes, self.gate_mode, self.norm_preserve, self.provenance)

    # -- files ----------------------------------------------------------------------------------
    def contents(self) -> VectorFile:
        """What a file of these vectors holds (the entries are shared, not copied)."""
        return VectorFile(dict(self._entries), list(self.attributes), self.gate_mode, self.norm_preserve,
                          dict(self.provenance))

    @classmethod
    def from_contents(cls, contents: VectorFile) -> "SteeringVectors":
        """Vectors from what a format read, validated."""
        return cls(contents.entries, contents.attributes, contents.gate_mode, contents.norm_preserve,
                   contents.provenance)

    def save(self, path: str | Path, strength=None, model_hint: str | None = None) -> None:
        """Writes ``.safetensors`` (everything), or a llama.cpp control vector when ``path`` ends in
        ``.gguf`` (ungated ``block_out`` only; ``strength`` sums several attributes; see
        ``steerkit.formats.gguf``)."""
        options = {k: v for k, v in (("strength", strength), ("model_hint", model_hint)) if v is not None}
        formats.write(self.contents(), path, **options)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "SteeringVectors":
        """steerkit's ``.safetensors``, or a llama.cpp control vector (``.gguf``, as repeng exports it)."""
        contents = formats.read(path, device)
        try:
            return cls.from_contents(contents)
        except ValueError as err:
            raise ValueError(f"{Path(path)}: {err}") from None
