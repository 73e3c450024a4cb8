"""llama.cpp control vectors (GGUF, as repeng's ``export_gguf`` writes them and llama.cpp and Ollama
read them), read and written as K=1 ungated ``block_out`` entries. The repeng and steering-vectors
converters (``converters``) share its layer numbering.

One layer numbering throughout. llama.cpp adds ``direction.N`` to the output of the 0-based decoder block
N, after its last residual add, at every position (``build_cvec`` after ``ffn_inp``'s add); repeng's
``ControlModel`` adds ``directions[N]`` to the output of ``model.layers[N]``; steering-vectors'
``decoder_block`` layer N is the same module. In steerkit that hidden state is ``block_out`` layer N:
the residual stream after block N, before the next block's norm (for the last block, before the final
norm). They add one ungated vector at every token; steerkit reads them as K=1 ungated ``block_out``
entries.

llama.cpp rejects ``direction.0`` (and then loads no control vector at all), so block 0 cannot be
steered through a GGUF file: loading one is refused, and so is exporting vectors at layer 0. A GGUF file
holds no gates, no other sites, no norm preservation and one direction per layer; exporting anything
else is refused with one line saying what the format cannot hold. Several attributes export only as a
fixed strength-weighted sum (``strength=``). steerkit's own metadata (attribute name, provenance) goes
in extra ``steerkit.*`` keys, which llama.cpp ignores.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..strengths import strength_values
from .contents import Entry, VectorFile

ARCH = "controlvector"
_ATTRIBUTE, _PROVENANCE = "steerkit.attribute", "steerkit.provenance"


def _fail(path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}")


def _string(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")


def read(path: Path, device="cpu") -> VectorFile:
    """A llama.cpp control-vector file as K=1 ungated ``block_out`` vectors (see the module docstring)."""
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no control-vector file at {path}")
    try:
        reader = GGUFReader(str(path))
    except Exception as err:  # noqa: BLE001 - the gguf package raises several kinds on a damaged file
        raise _fail(path, f"not a readable GGUF file ({type(err).__name__}: {err})") from None
    arch = _string(reader, "general.architecture")
    if arch != ARCH:
        raise _fail(path, f"a GGUF file of architecture {arch!r}, not a control vector ({ARCH!r})")
    directions = {}
    for t in reader.tensors:
        name = t.name
        layer = name.partition(".")[2]
        if not name.startswith("direction.") or not layer.isdigit():
            raise _fail(path, f"tensor {name!r} is not a control-vector direction (direction.N)")
        if int(layer) == 0:
            raise _fail(path, "direction.0: llama.cpp does not steer block 0 (it rejects the file), so "
                              "neither does steerkit")
        data = torch.from_numpy(t.data.copy()).float().reshape(-1)
        directions[int(layer)] = data
    if not directions:
        raise _fail(path, "no direction.N tensors")
    widths = {v.numel() for v in directions.values()}
    if len(widths) != 1:
        raise _fail(path, f"directions of different widths {sorted(widths)}")
    provenance = {"source": "llama.cpp control vector", "file": path.name}
    hint = _string(reader, f"{ARCH}.model_hint")
    if hint:
        provenance["model_hint"] = hint
    extra = _string(reader, _PROVENANCE)
    if extra:
        provenance = {**json.loads(extra), **{k: v for k, v in provenance.items() if k != "source"}}
    attribute = _string(reader, _ATTRIBUTE) or path.stem
    return VectorFile({("block_out", layer): Entry(v[None, :].to(device)) for layer, v in sorted(directions.items())},
                      attributes=[attribute], gate_mode="none", provenance=provenance)


def directions(vecs: VectorFile, strength=None, what: str = "a llama.cpp control vector") -> dict:
    """``{layer: direction}`` of what a control vector can hold: ungated ``block_out`` vectors, one
    attribute or a fixed strength-weighted sum of several. Anything else raises one line saying why."""
    if vecs.gate_mode != "none":
        raise ValueError(f"{what} holds no gates; these vectors are gated ({vecs.gate_mode})")
    if vecs.norm_preserve:
        raise ValueError(f"{what} cannot preserve norms; these vectors are norm-preserving")
    others = sorted({site for site, _ in vecs.entries if site != "block_out"})
    if others:
        raise ValueError(f"{what} steers block outputs only; these vectors also steer {', '.join(others)}")
    k = vecs.num_attributes
    if strength is None:
        if k != 1:
            raise ValueError(f"{what} holds one direction per layer; these vectors have {k} attributes "
                             f"{vecs.attributes}: pass strength= (one per attribute) to export their weighted sum")
        weights = torch.ones(1)
    else:
        weights = _weights(vecs, strength)
    out = {}
    for (_, layer), e in vecs.entries.items():
        out[layer] = (weights[:, None] * e.theta.detach().double().cpu()).sum(0)
    return out


def _weights(vecs: VectorFile, strength) -> torch.Tensor:
    """One float64 weight per attribute from any strength ``steerkit.strengths`` reads, or a tensor."""
    if isinstance(strength, torch.Tensor):
        strength = strength.detach().double().reshape(-1).tolist()
        strength = strength[0] if len(strength) == 1 else strength
    values = strength_values(strength, vecs.attributes)
    k = vecs.num_attributes
    return torch.tensor([values] * k if isinstance(values, float) else values, dtype=torch.float64)


def write(vecs: VectorFile, path: Path, strength=None, model_hint: str | None = None) -> None:
    """Writes what a llama.cpp control vector can hold (``directions``) to ``path``."""
    from gguf import GGUFWriter

    dirs = directions(vecs, strength)
    if 0 in dirs:
        raise ValueError("a llama.cpp control vector cannot steer block 0 (llama.cpp rejects direction.0 and "
                         "then loads no control vector); drop block_out layer 0 before exporting")
    hint = model_hint or vecs.provenance.get("model_hint") or vecs.provenance.get("model_type")
    if not hint:
        raise ValueError("model_hint: the model family the vectors are for (e.g. 'llama') is not in the vectors' "
                         "provenance; pass model_hint=")
    name = vecs.attributes[0] if strength is None else "+".join(
        f"{s:g}*{a}" for s, a in zip(_weights(vecs, strength).tolist(), vecs.attributes))
    writer = GGUFWriter(str(path), ARCH)
    writer.add_string(f"{ARCH}.model_hint", str(hint))
    writer.add_uint32(f"{ARCH}.layer_count", len(dirs))
    writer.add_string(_ATTRIBUTE, name)
    writer.add_string(_PROVENANCE, json.dumps(vecs.provenance))
    for layer, d in sorted(dirs.items()):
        writer.add_tensor(f"direction.{layer}", d.float().numpy())  # llama.cpp reads float32 only
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
