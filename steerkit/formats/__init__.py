"""Vector-file formats, one module each, chosen by the file's suffix. Each reads a file into a
``VectorFile`` of ``Entry``s and writes one back; ``SteeringVectors.load`` and ``save`` go through
``read`` and ``write`` here, and nothing in this package imports ``steerkit.vectors``.

``contents``     ``Entry`` and ``VectorFile``: what every format reads and writes
``safetensors``  steerkit's own file: every site, gate and attribute, with its metadata (any suffix but ``.gguf``)
``gguf``         llama.cpp's control vectors (``.gguf``, as repeng exports them): ungated ``block_out`` only
``converters``   repeng ``ControlVector`` and steering-vectors ``SteeringVector`` objects, in llama.cpp's numbering
"""
from __future__ import annotations

from pathlib import Path

from . import gguf, safetensors
from .contents import Entry, VectorFile

# suffix -> format module; any other suffix is steerkit's own safetensors file
FORMATS = {".gguf": gguf, ".safetensors": safetensors}


def format_for(path: str | Path):
    """The format module for ``path``, by its suffix."""
    return FORMATS.get(Path(path).suffix, safetensors)


def read(path: str | Path, device="cpu") -> VectorFile:
    return format_for(path).read(Path(path), device)


def write(contents: VectorFile, path: str | Path, **options) -> None:
    """Writes ``contents`` in the format of ``path``'s suffix; ``options`` are that format's (a GGUF
    file's ``strength`` and ``model_hint``); a format refuses options it has no use for."""
    format_for(path).write(contents, Path(path), **options)


__all__ = ["Entry", "VectorFile", "FORMATS", "format_for", "read", "write"]
