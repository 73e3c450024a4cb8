"""llama.cpp control vectors (GGUF) in and out, and repeng / steering-vectors objects, against the
libraries themselves where they are installed: the converted vectors steer exactly as the library
steers, and a file steerkit writes reads back in repeng."""
import json

import pytest
import torch
from tiny_models import tiny_model

import steerkit as sk
from steerkit.vectors import Entry

gguf = pytest.importorskip("gguf", reason="GGUF control vectors need the gguf package (steerkit[real])")


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def _ids(model):
    return torch.tensor([[1, 5, 9, 12, 7, 30, 2, 18]])


def _logits(model, ids=None):
    with torch.no_grad():
        return model(_ids(model) if ids is None else ids).logits


def _k1(layers=(1, 2), d=32, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return sk.SteeringVectors({("block_out", L): Entry(torch.randn(1, d, generator=g) * scale) for L in layers},
                              attributes=["mood"], gate_mode="none", provenance={"model_type": "llama"})


def test_a_gguf_round_trip_keeps_directions_name_and_provenance(tmp_path):
    vecs = _k1()
    vecs.save(tmp_path / "mood.gguf")
    back = sk.SteeringVectors.load(tmp_path / "mood.gguf")
    assert back.keys() == vecs.keys() and back.attributes == ["mood"] and back.gate_mode == "none"
    for key in vecs:
        torch.testing.assert_close(back[key].theta, vecs[key].theta)
    assert back.provenance["model_type"] == "llama" and back.provenance["model_hint"] == "llama"


def test_export_refuses_what_the_format_cannot_hold(tmp_path):
    g = torch.Generator().manual_seed(1)
    gated = sk.SteeringVectors.from_tensors(torch.randn(1, 32, generator=g), "block_out", 1,
                                            gate_w=torch.randn(1, 32, generator=g), gate_b=torch.zeros(1),
                                            provenance={"model_type": "llama"})
    cases = {
        "holds no gates": gated,
        "cannot preserve norms": sk.SteeringVectors({("block_out", 1): Entry(torch.randn(1, 32))}, norm_preserve=True,
                                                    gate_mode="none", provenance={"model_type": "llama"}),
        "also steer attn_out": sk.SteeringVectors({("block_out", 1): Entry(torch.randn(1, 32)),
                                                   ("attn_out", 1): Entry(torch.randn(1, 32))},
                                                  gate_mode="none", provenance={"model_type": "llama"}),
        "cannot steer block 0": _k1(layers=(0, 1)),
        "pass strength=": sk.SteeringVectors({("block_out", 1): Entry(torch.randn(2, 32))}, gate_mode="none",
                                             provenance={"model_type": "llama"}),
        "model_hint": sk.SteeringVectors({("block_out", 1): Entry(torch.randn(1, 32))}, gate_mode="none"),
    }
    for why, vecs in cases.items():
        with pytest.raises(ValueError, match=why):
            vecs.save(tmp_path / "x.gguf")
        assert not (tmp_path / "x.gguf").exists()


def test_several_attributes_export_as_their_strength_weighted_sum(tmp_path):
    g = torch.Generator().manual_seed(2)
    theta = torch.randn(2, 32, generator=g)
    vecs = sk.SteeringVectors({("block_out", 2): Entry(theta)}, attributes=["a", "b"], gate_mode="none",
                              provenance={"model_type": "llama"})
    vecs.save(tmp_path / "ab.gguf", strength=[1.5, -0.5])
    back = sk.SteeringVectors.load(tmp_path / "ab.gguf")
    torch.testing.assert_close(back[("block_out", 2)].theta[0], 1.5 * theta[0] - 0.5 * theta[1])
    assert back.attributes == ["1.5*a+-0.5*b"]


def _write_gguf(path, arch="controlvector", tensors=None):
    import numpy as np
    w = gguf.GGUFWriter(str(path), arch)
    w.add_string(f"{arch}.model_hint", "llama")
    for name, value in (tensors if tensors is not None else {"direction.1": np.ones(32, np.float32)}).items():
        w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_a_malformed_gguf_is_refused_in_one_line_naming_the_file(tmp_path, model):
    import numpy as np
    bad = {
        "architecture 'llama', not a control vector": dict(arch="llama"),
        "no direction.N tensors": dict(tensors={}),
        "is not a control-vector direction": dict(tensors={"token_embd.weight": np.ones(32, np.float32)}),
        "direction.0: llama.cpp does not steer block 0": dict(tensors={"direction.0": np.ones(32, np.float32)}),
        "different widths": dict(tensors={"direction.1": np.ones(32, np.float32), "direction.2": np.ones(16, np.float32)}),
    }
    for i, (why, kwargs) in enumerate(bad.items()):
        path = tmp_path / f"bad{i}.gguf"
        _write_gguf(path, **kwargs)
        with pytest.raises(ValueError, match=why) as err:
            sk.SteeringVectors.load(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(ValueError, match="not a readable GGUF file"):
        sk.SteeringVectors.load(tmp_path / "junk.gguf")
    # a layer beyond the model: refused when it is applied, naming the layer
    _write_gguf(tmp_path / "far.gguf", tensors={"direction.9": np.ones(32, np.float32)})
    with pytest.raises(ValueError, match="layer 9"):
        sk.steer(model, sk.SteeringVectors.load(tmp_path / "far.gguf"))


# -- the libraries themselves ---------------------------------------------------------------------------------
@pytest.mark.parametrize("coeff", [1.0, -1.0])
def test_a_repeng_vector_exported_by_repeng_steers_as_repengs_control_model(model, tmp_path, coeff):
    repeng = pytest.importorskip("repeng", reason="repeng is not installed here")
    g = torch.Generator().manual_seed(3)
    cv = repeng.ControlVector(model_type="llama", directions={1: (torch.randn(32, generator=g) * 2).numpy(),
                                                              2: (torch.randn(32, generator=g) * 2).numpy()})
    cv.export_gguf(str(tmp_path / "repeng.gguf"))
    vecs = sk.SteeringVectors.load(tmp_path / "repeng.gguf")
    cm = repeng.ControlModel(model, [1, 2])
    try:
        cm.set_control(cv, coeff)
        want = _logits(cm)
    finally:
        cm.unwrap()
    with sk.steer(model, vecs, strength=coeff):
        got = _logits(model)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (got - _logits(model)).abs().max() > 1e-2  # it steers
    # and the in-memory conversion is the same vectors
    direct = sk.SteeringVectors.from_repeng(cv)
    for key in vecs:
        torch.testing.assert_close(direct[key].theta, vecs[key].theta)


def test_a_steerkit_gguf_reads_back_in_repeng(tmp_path):
    repeng = pytest.importorskip("repeng", reason="repeng is not installed here")
    vecs = _k1(layers=(1, 2, 3))
    vecs.save(tmp_path / "mine.gguf")
    cv = repeng.ControlVector.import_gguf(str(tmp_path / "mine.gguf"))
    assert cv.model_type == "llama" and sorted(cv.directions) == [1, 2, 3]
    for layer, d in cv.directions.items():
        torch.testing.assert_close(torch.as_tensor(d).float(), vecs[("block_out", layer)].theta[0])


@pytest.mark.parametrize("multiplier", [1.0, -0.5])
def test_a_steering_vectors_object_steers_as_its_own_apply(model, multiplier):
    sv_mod = pytest.importorskip("steering_vectors", reason="steering-vectors is not installed here")
    g = torch.Generator().manual_seed(4)
    sv = sv_mod.SteeringVector(layer_activations={0: torch.randn(32, generator=g) * 2,
                                                  2: torch.randn(32, generator=g) * 2}, layer_type="decoder_block")
    with sv.apply(model, multiplier=multiplier):
        want = _logits(model)
    vecs = sk.SteeringVectors.from_steering_vectors(sv)
    with sk.steer(model, vecs, strength=multiplier):
        got = _logits(model)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (got - _logits(model)).abs().max() > 1e-2
    with pytest.raises(ValueError, match="layer_type 'attention'"):
        sk.SteeringVectors.from_steering_vectors(sv_mod.SteeringVector(sv.layer_activations, layer_type="attention"))


def test_provenance_travels_in_steerkit_keys(tmp_path):
    vecs = _k1()
    vecs.provenance["method"] = "mean-difference"
    vecs.save(tmp_path / "p.gguf")
    reader = gguf.GGUFReader(str(tmp_path / "p.gguf"))
    field = reader.get_field("steerkit.provenance")
    assert json.loads(bytes(field.parts[field.data[0]]))["method"] == "mean-difference"


def test_the_cli_converts_both_ways_and_refuses_in_one_line(tmp_path, capsys):
    from steerkit import cli
    vecs = _k1()
    vecs.save(tmp_path / "v.safetensors")
    assert cli.main(["convert", str(tmp_path / "v.safetensors"), str(tmp_path / "v.gguf")]) == 0
    assert cli.main(["convert", str(tmp_path / "v.gguf"), str(tmp_path / "back.safetensors")]) == 0
    back = sk.SteeringVectors.load(tmp_path / "back.safetensors")
    for key in vecs:
        torch.testing.assert_close(back[key].theta, vecs[key].theta)
    capsys.readouterr()
    two = sk.SteeringVectors({("block_out", 1): Entry(torch.randn(2, 32))}, attributes=["a", "b"], gate_mode="none",
                             provenance={"model_type": "llama"})
    two.save(tmp_path / "two.safetensors")
    assert cli.main(["convert", str(tmp_path / "two.safetensors"), str(tmp_path / "two.gguf")]) == 2
    err = capsys.readouterr().err
    assert "pass strength=" in err and err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["convert", str(tmp_path / "two.safetensors"), str(tmp_path / "two.gguf"),
                     "--strength", "1", "0.5"]) == 0
    assert cli.main(["convert", str(tmp_path / "v.gguf"), str(tmp_path / "nope" / "x.gguf")]) == 2
