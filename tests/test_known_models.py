"""Real models by short name (steerkit.known_models): one file in one wheel, or chunks across several
joined once into the cache and checked against the packager's SHA-256."""
import hashlib

import pytest

from steerkit import known_models
from steerkit.known_models import KnownModel


def _fake(tmp_path, monkeypatch, sums_text=None):
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    files = {}
    for i, data in enumerate(chunks):
        files[(f"part{i}", f"m.gguf.part{i:02d}")] = tmp_path / f"m.gguf.part{i:02d}"
        files[(f"part{i}", f"m.gguf.part{i:02d}")].write_bytes(data)
    digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(sums_text or f"{digest}  m.gguf\n")
    files[("meta", "SHA256SUMS")] = tmp_path / "SHA256SUMS"
    monkeypatch.setattr(known_models, "_file_in", lambda dist, name, *_: files[(dist, name)])
    monkeypatch.setenv("STEERKIT_CACHE", str(tmp_path / "cache"))
    known = KnownModel("m.gguf", "pip install meta", licence="x", family="y",
                       chunks=tuple((f"part{i}", f"m.gguf.part{i:02d}") for i in range(3)), sums=("meta", "SHA256SUMS"))
    monkeypatch.setitem(known_models.KNOWN, "fake", known)
    return b"".join(chunks)


def test_chunks_are_joined_once_in_order_and_checked(tmp_path, monkeypatch):
    whole = _fake(tmp_path, monkeypatch)
    path = known_models.resolve("fake")
    assert path == tmp_path / "cache" / "models" / "m.gguf" and path.read_bytes() == whole
    stamp = path.stat().st_mtime_ns
    assert known_models.resolve("fake") == path and path.stat().st_mtime_ns == stamp  # not joined again
    path.write_bytes(whole[:10])  # torn: joined again
    assert known_models.resolve("fake").read_bytes() == whole


def test_a_checksum_that_differs_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    _fake(tmp_path, monkeypatch, sums_text="0" * 64 + "  m.gguf\n")
    with pytest.raises(ValueError, match="--model fake: its chunks join to a file with SHA-256 .* not the published"):
        known_models.resolve("fake")
    assert not list((tmp_path / "cache" / "models").iterdir())


def test_names_that_are_not_known_are_paths():
    assert known_models.resolve("some/folder") is None
    assert set(known_models.KNOWN) >= {"smollm2", "gemma3-270m"}
    assert all(k.licence and k.install.startswith("pip install") for k in known_models.KNOWN.values())
