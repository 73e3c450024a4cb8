"""SteeringVectors: construction, safetensors round trip, and a clear error for each bad file."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from steerkit import SteeringVectors
from steerkit.vectors import FORMAT_VERSION, Entry


def _vecs(gated=True, k=2, d=8):
    g = torch.Generator().manual_seed(0)
    mk = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    entries = {
        ("attn_heads", 3): Entry(mk(k, d), mk(k, d) if gated else None, mk(k) if gated else None),
        ("mlp_out", 1): Entry(mk(k, d + 4), mk(k, d + 4) if gated else None, None),
    }
    return SteeringVectors(entries, attributes=["truthful", "polite"][:k], gate_mode="sigmoid" if gated else "none",
                           norm_preserve=True, provenance={"model": "tiny-llama", "epochs": 3})


@pytest.mark.parametrize("gated", [True, False])
def test_round_trip(tmp_path, gated):
    v = _vecs(gated)
    path = tmp_path / "v.safetensors"
    v.save(path)
    w = SteeringVectors.load(path)
    assert w.keys() == [("attn_heads", 3), ("mlp_out", 1)]
    assert (w.attributes, w.gate_mode, w.norm_preserve, w.provenance) == (
        v.attributes, v.gate_mode, True, {"model": "tiny-llama", "epochs": 3})
    for key in v:
        for name in ("theta", "gate_w", "gate_b"):
            a, b = getattr(v[key], name), getattr(w[key], name)
            assert (a is None and b is None) or torch.equal(a, b)
    assert "K=2" in repr(w) and "attn_heads@3" in repr(w)


def test_from_tensors_and_from_dict():
    theta = torch.randn(3, 16)
    v = SteeringVectors.from_tensors(theta, site="block_out", layer=0)
    assert v.gate_mode == "none" and v.num_attributes == 3 and v.attributes == ["attr0", "attr1", "attr2"]
    w = SteeringVectors.from_dict({"attn_out:2": {"theta": theta, "gate_w": torch.randn(3, 16)},
                                   ("mlp_out", 2): {"theta": theta, "gate_w": torch.randn(3, 16)}})
    assert w.gate_mode == "sigmoid" and w.keys() == [("attn_out", 2), ("mlp_out", 2)]
    half = w.to(dtype=torch.float16)
    assert half[("attn_out", 2)].theta.dtype == torch.float16


@pytest.mark.parametrize("build, message", [
    (lambda: SteeringVectors({("attn_heads", 0): Entry(torch.randn(2, 4), torch.randn(2, 5))}), "gate_w must have"),
    (lambda: SteeringVectors({("attn_heads", 0): Entry(torch.randn(2, 4))}), "needs gate_w"),
    (lambda: SteeringVectors({("resid", 0): Entry(torch.randn(2, 4))}, gate_mode="none"), "unknown site 'resid'"),
    (lambda: SteeringVectors({("mlp_out", -1): Entry(torch.randn(2, 4))}, gate_mode="none"), "non-negative int"),
    (lambda: SteeringVectors({("mlp_out", 0): Entry(torch.randn(2, 4)), ("attn_out", 0): Entry(torch.randn(3, 4))},
                             gate_mode="none"), "K=3 attributes but other entries have K=2"),
    (lambda: SteeringVectors({("mlp_out", 0): Entry(torch.tensor([[1.0, float("nan")]]))}, gate_mode="none"),
     "theta contains NaN"),
    (lambda: SteeringVectors({("mlp_out", 0): Entry(torch.randn(2, 4))}, attributes=["a"], gate_mode="none"),
     "1 attribute names given for K=2"),
    (lambda: SteeringVectors({}, gate_mode="none"), "at least one"),
])
def test_construction_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def _rewrite(path, tensors=None, **meta_changes):
    """Rewrites a saved file with changed tensors or metadata, as a damaged or foreign file would be."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    meta.update(meta_changes)
    save_file(tensors if tensors is not None else load_file(str(path)), str(path), metadata=meta)


@pytest.mark.parametrize("damage, message", [
    (lambda p, t: _rewrite(p, {k: v for k, v in t.items() if k != "mlp_out.1.theta"}), "mlp_out.1.theta is missing"),
    (lambda p, t: _rewrite(p, {**t, "attn_heads.3.theta": torch.randn(2, 7)}), "gate_w must have theta's shape"),
    (lambda p, t: _rewrite(p, {**t, "mlp_out.1.theta": torch.randn(3, 12), "mlp_out.1.gate_w": torch.randn(3, 12)}),
     "K=3 attributes but other entries have K=2"),
    (lambda p, t: _rewrite(p, {**t, "attn_heads.3.gate_b": torch.tensor([1.0, float("inf")])}), "gate_b contains"),
    (lambda p, t: _rewrite(p, entries=json.dumps([["attn_heads", 3], ["residual", 1]])), "unknown site 'residual'"),
    (lambda p, t: _rewrite(p, format_version=str(FORMAT_VERSION + 1)), "newer than this steerkit reads"),
    (lambda p, t: _rewrite(p, format="something.else"), "not steerkit steering vectors"),
    (lambda p, t: _rewrite(p, {**t, "extra.0.theta": torch.randn(2, 8)}), "not listed in its metadata"),
    (lambda p, t: p.write_bytes(b"\x80\x04garbage that is not safetensors"), "not a readable .safetensors"),
])
def test_load_errors(tmp_path, damage, message):
    path = tmp_path / "v.safetensors"
    _vecs().save(path)
    damage(path, load_file(str(path)))
    with pytest.raises(ValueError, match=message):
        SteeringVectors.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no steering-vector file"):
        SteeringVectors.load(tmp_path / "nope.safetensors")
