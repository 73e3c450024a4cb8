"""Strength as users write it (issue 37, item 6): a number, a list, or {attribute: number}, read the
same way by steer/patch/set_strength, the CLI, control-vector export and the vLLM request."""
import math

import pytest
import torch

import steerkit
from steerkit import SteeringVectors, cli
from steerkit.strengths import parse_cli, strength_values
from steerkit.vllm.requests import cache_key, parse_request

from test_cli_generate import _checkpoint
from tiny_models import tiny_model

ATTRS = ["sentiment", "food", "ease"]


def test_every_spelling_reads_to_one_value_per_attribute():
    assert strength_values(2, ATTRS) == 2.0
    assert strength_values([1, 2.5, 0], ATTRS) == [1.0, 2.5, 0.0]
    assert strength_values((1, 2, 3), ATTRS) == [1.0, 2.0, 3.0]
    assert strength_values({"food": 2, "sentiment": -4}, ATTRS) == [-4.0, 2.0, 0.0]
    assert strength_values({}, ATTRS) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("value, message", [
    ({"tone": 1}, "unknown attribute 'tone'; these vectors have sentiment, food, ease"),
    ({"food": "2"}, "the strength of 'food' must be a number"),
    ([1, 2], "a list of 3 floats"),
    ([1, "2", 3], "a list of 3 floats"),
    (True, "a list of 3 floats"),
    ({"food": math.nan}, "NaN or Inf"),
    ([1, math.inf, 0], "NaN or Inf"),
])
def test_what_cannot_be_read_is_refused_in_one_line(value, message):
    with pytest.raises(ValueError, match="^strength: .*" + message.replace("(", r"\(")) as e:
        strength_values(value, ATTRS)
    assert "\n" not in str(e.value)


def test_the_cli_forms():
    assert parse_cli(None) is None
    assert parse_cli(["2"]) == 2.0
    assert parse_cli(["4", "-1"]) == [4.0, -1.0]
    assert parse_cli(["sentiment=4", "food=-2"]) == {"sentiment": 4.0, "food": -2.0}
    for bad, message in [(["4", "food=2"], "numbers only or NAME=number only"), (["x"], "'x' is not a number"),
                         (["food=2", "food=3"], "once per attribute"), (["=2"], "once per attribute"),
                         (["nan"], "not a finite number"), (["food=much"], "is not a number")]:
        with pytest.raises(ValueError, match=message):
            parse_cli(bad)


def _logits(model, strength=None, vecs=None):
    ids = torch.tensor([[1, 5, 9, 3, 2]])
    if vecs is None:
        return model(ids).logits
    with steerkit.steer(model, vecs, strength=strength):
        return model(ids).logits


def test_a_dict_steers_as_the_list_it_stands_for():
    model = tiny_model("llama")
    vecs = SteeringVectors.from_tensors(torch.randn(3, 32) * 3, site="mlp_out", layer=1, attributes=ATTRS)
    want = _logits(model, torch.tensor([0.0, 2.0, -1.0]), vecs)
    assert torch.equal(_logits(model, {"food": 2, "ease": -1}, vecs), want)
    assert torch.equal(_logits(model, [0, 2, -1], vecs), want)
    handle = steerkit.patch(model, vecs, strength=1.0)
    handle.set_strength({"food": 2.0, "ease": -1.0})
    assert torch.equal(model(torch.tensor([[1, 5, 9, 3, 2]])).logits, want)
    with pytest.raises(ValueError, match="unknown attribute 'tone'"):
        handle.set_strength({"tone": 1.0})
    handle.remove()


def test_an_unknown_name_leaves_the_model_as_it_was():
    model = tiny_model("llama")
    base = _logits(model)
    vecs = SteeringVectors.from_tensors(torch.randn(3, 32), site="mlp_out", layer=1, attributes=ATTRS)
    with pytest.raises(ValueError, match="unknown attribute 'tone'"):
        steerkit.patch(model, vecs, strength={"tone": 2})
    assert torch.equal(_logits(model), base) and not getattr(model, "_steerkit_patched", {})


def test_generate_takes_names_and_refuses_an_unknown_one_before_loading(tmp_path, capsys):
    model, vecs = _checkpoint(tmp_path)  # attributes a, b
    rc = cli.main(["generate", "--model", str(model), "--vectors", str(vecs), "--prompt", "w1 w2 w3",
                   "--strength", "a=3", "b=-1", "--max-new-tokens", "4"])
    assert rc == 0
    named = capsys.readouterr().out
    cli.main(["generate", "--model", str(model), "--vectors", str(vecs), "--prompt", "w1 w2 w3",
              "--strength", "3", "-1", "--max-new-tokens", "4"])
    assert capsys.readouterr().out == named
    # the model folder does not exist: the strength is refused first, so the error names it
    rc = cli.main(["generate", "--model", str(tmp_path / "nothing"), "--vectors", str(vecs), "--prompt", "x",
                   "--strength", "tone=2"])
    assert rc == 2 and "--strength: unknown attribute 'tone'; these vectors have a, b" in capsys.readouterr().err


def test_the_vllm_request_reads_the_same_spellings():
    sets = {"tone": tuple(ATTRS)}
    read = lambda s: parse_request({"steerkit_vectors": "tone", "steerkit_strength": s}, sets).strength  # noqa: E731
    assert read(2) == (2.0, 2.0, 2.0)
    assert read([1, 2, 3]) == (1.0, 2.0, 3.0)
    assert read({"food": 2}) == (0.0, 2.0, 0.0)
    assert read("food=2,sentiment=-1") == (-1.0, 2.0, 0.0)  # vllm_xargs over HTTP carries no dict
    for bad, message in [({"tone": 1}, "unknown attribute 'tone'"), ([1, 2], "3 floats"), ("food=x", "not a number"),
                         (math.nan, "NaN")]:
        with pytest.raises(ValueError, match="steerkit_strength: .*" + message):
            read(bad)


def test_the_prefix_cache_key_never_merges_different_steering():
    key = lambda s, tokens="all": cache_key({"steerkit_vectors": "tone", "steerkit_strength": s,  # noqa: E731
                                             "steerkit_tokens": tokens})
    different = [key(1.0), key([0.0, 1.0, 0.0]), key({"sentiment": 1}), key({"food": 1}),
                 key({"food": 1}, "generated"), key(2.0), key([2.0, 0.0, 0.0])]
    assert len(set(different)) == len(different)
    assert key("food=1") == key({"food": 1.0})  # over HTTP and offline, one steering, one key


def test_generate_refuses_what_the_config_tells_before_the_weights_load(tmp_path, capsys, monkeypatch):
    from steerkit import hf

    model, _ = _checkpoint(tmp_path)  # a llama of 3 layers, hidden 32, no chat template
    loads = []
    monkeypatch.setattr(hf.Checkpoint, "load", lambda self, *a, **k: loads.append(1))
    for vecs, message in [
        (SteeringVectors.from_tensors(torch.randn(2, 48), site="mlp_out", layer=0), "D=48.*width 32"),
        (SteeringVectors.from_tensors(torch.randn(2, 32), site="block_out", layer=5), "has 3 decoder layers"),
        (SteeringVectors.from_tensors(torch.randn(2, 32), site="block_out", layer=1,
                                      provenance={"model_type": "gpt2"}), "made for a 'gpt2' model"),
    ]:
        vecs.save(tmp_path / "v2.safetensors")
        rc = cli.main(["generate", "--model", str(model), "--vectors", str(tmp_path / "v2.safetensors"),
                       "--prompt", "w1"])
        err = capsys.readouterr().err
        assert rc == 2 and __import__("re").search(message, err), err
    rc = cli.main(["generate", "--model", str(model), "--vectors", str(tmp_path / "v.safetensors"), "--prompt", "w1",
                   "--chat"])
    assert rc == 2 and "--chat: this model's tokenizer has no chat template" in capsys.readouterr().err
    assert not loads
