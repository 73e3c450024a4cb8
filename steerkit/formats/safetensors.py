"""steerkit's own vector file: one ``.safetensors`` file whose tensors are ``<site>.<layer>.theta`` (and
``gate_w``, ``gate_b``) and whose metadata carries the attribute names, gate mode, norm preservation,
provenance, the list of entries and a format version. Reading never unpickles anything and refuses a
file that is not one, is damaged, or is of a newer version, naming the file."""
from __future__ import annotations

import json
from pathlib import Path

from ..sites import SITES
from .contents import Entry, VectorFile

FORMAT = "steerkit.vectors"
FORMAT_VERSION = 1


def write(contents: VectorFile, path: Path, strength=None, model_hint: str | None = None) -> None:
    if strength is not None or model_hint is not None:
        raise ValueError("strength and model_hint are for .gguf control vectors; a .safetensors file keeps "
                         "every attribute")
    from safetensors.torch import save_file

    tensors, places = {}, []
    for (site, layer), e in contents.entries.items():
        places.append([site, layer])
        for name in ("theta", "gate_w", "gate_b"):
            t = getattr(e, name)
            if t is not None:
                tensors[f"{site}.{layer}.{name}"] = t.detach().to("cpu").contiguous()
    metadata = {
        "format": FORMAT, "format_version": str(FORMAT_VERSION), "attributes": json.dumps(contents.attributes),
        "gate_mode": contents.gate_mode, "norm_preserve": json.dumps(contents.norm_preserve),
        "provenance": json.dumps(contents.provenance), "entries": json.dumps(places),
    }
    save_file(tensors, str(path), metadata=metadata)


def read(path: Path, device="cpu") -> VectorFile:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no steering-vector file at {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable .safetensors file: {err}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not steerkit steering vectors (no "
                         f"'format: {FORMAT}' in its metadata)")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise ValueError(f"{path}: format_version {meta.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise ValueError(f"{path} uses steering-vector format {version}, newer than this steerkit reads "
                         f"({FORMAT_VERSION}); upgrade steerkit")
    try:
        places = json.loads(meta["entries"])
        attributes = json.loads(meta["attributes"])
        norm_preserve = json.loads(meta.get("norm_preserve", "false"))
        provenance = json.loads(meta.get("provenance", "{}"))
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: damaged metadata ({err})") from None
    gate_mode = meta.get("gate_mode", "sigmoid")
    if not isinstance(places, list):
        raise ValueError(f"{path}: damaged metadata: 'entries' must be a list of [site, layer] pairs, got "
                         f"{meta['entries']!r}")
    entries = {}
    for place in places:
        if not (isinstance(place, list) and len(place) == 2 and isinstance(place[1], int)
                and not isinstance(place[1], bool)):
            raise ValueError(f"{path}: damaged metadata: each of 'entries' must be a [site, layer] pair, got "
                             f"{place!r}")
        site, layer = place
        if site not in SITES:
            raise ValueError(f"{path}: unknown site {site!r}; expected one of {', '.join(SITES)}")
        prefix = f"{site}.{layer}."
        if prefix + "theta" not in tensors:
            raise ValueError(f"{path}: {site} layer {layer} is listed but its tensor {prefix}theta is missing")
        entries[(site, int(layer))] = Entry(tensors.pop(prefix + "theta"), tensors.pop(prefix + "gate_w", None),
                                            tensors.pop(prefix + "gate_b", None))
    if tensors:
        raise ValueError(f"{path}: tensors not listed in its metadata: {sorted(tensors)}")
    return VectorFile(entries, attributes, gate_mode, norm_preserve, provenance)
