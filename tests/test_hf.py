"""steerkit.hf: the one module that reads Hugging Face calling conventions, on the installed release."""
import re
from pathlib import Path

import pytest
import torch

from steerkit import hf, models

from tiny_models import FAMILIES, tiny_model

PROMPT = torch.tensor([[1, 7, 12, 40]])


def test_no_other_module_reads_a_hugging_face_keyword():
    names = re.compile(r"past_key_value|cache_position|torch_dtype|\"cache\"|output_attentions|get_seq_length")
    package = Path(hf.__file__).parent  # steerkit/hf: the one place that may
    offenders = [f"{p.relative_to(package.parent)}:{i + 1}" for p in package.parent.rglob("*.py")
                 if not p.is_relative_to(package) for i, line in enumerate(p.read_text().splitlines())
                 if names.search(line)]
    assert any(names.search(p.read_text()) for p in package.rglob("*.py"))  # the scan finds them where they are
    assert offenders == []


@pytest.mark.parametrize("family", FAMILIES)
def test_the_cache_a_model_returns_is_found_and_measured_and_fed_back(family):
    model = tiny_model(family)
    with torch.no_grad():
        out = model(PROMPT, use_cache=True)
        cache = hf.output_cache(out)
        assert hf.cache_length(cache) == 4
        if type(cache).__name__ == "HybridCache":
            pytest.skip("this release's Gemma-2 sizes the HybridCache of a plain forward to the prompt: it cannot be "
                        "stepped by hand (generate() sizes it for the whole run)")
        step = model(torch.tensor([[5]]), **hf.cache_kwargs(model, cache))
        whole = model(torch.cat([PROMPT, torch.tensor([[5]])], 1)).logits[0, -1]
    assert torch.allclose(step.logits[0, -1], whole, atol=1e-4)
    assert hf.cache_length(hf.output_cache(step)) == 5


def test_call_conventions_under_every_name():
    class Cache:
        def get_seq_length(self):
            return 7

    for name in hf.CACHE_NAMES:
        assert hf.call_cache({name: Cache()}) is not None
        assert hf.past_length({name: Cache()}, 1) == 7
    legacy = ((torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)),)
    assert hf.past_length({"past_key_values": legacy}, 1) == 3
    assert hf.past_length({"cache_position": torch.tensor([9, 10])}, 2) == 9
    assert hf.past_length({"attention_mask": torch.ones(1, 6), "cache": Cache()}, 2) == 4  # the mask covers all
    assert hf.past_length({}, 3) == 0
    with pytest.raises(ValueError, match="attention_mask has 2 columns for a call of 3 tokens"):
        hf.past_length({"attention_mask": torch.ones(1, 2)}, 3)
    with pytest.raises(ValueError, match="cannot read how many tokens a object KV cache holds"):
        hf.cache_length(object())
    assert hf.call_mask({}, 0, 2) is None
    with pytest.raises(ValueError, match="attention_mask: expected a"):
        hf.call_mask({"attention_mask": torch.ones(1, 2, 2)}, 0, 2)
    # a 4-D additive mask as wide as a static cache: one pad, 2 cached + 1 new token, 2 empty slots
    four_d = torch.zeros(1, 1, 1, 5)
    four_d[..., 0] = four_d[..., 3:] = torch.finfo(torch.float32).min
    assert hf.call_mask({"attention_mask": four_d}, 2, 1).tolist() == [[0, 1, 1]]
    ids = torch.ones(1, 2, dtype=torch.long)
    assert hf.call_tokens((ids,), {}) is ids and hf.call_tokens((), {"input_ids": ids}) is ids


def test_dtype_keyword_matches_the_release():
    key = "dtype" if hf.transformers_version() >= (4, 56) else "torch_dtype"
    assert hf.dtype_kwargs(torch.float16) == {key: torch.float16} and hf.dtype_kwargs(None) == {}


def test_load_model_reads_a_saved_checkpoint_in_the_asked_dtype(tmp_path):
    tiny_model("llama").save_pretrained(tmp_path)
    from test_cli_generate import _checkpoint

    folder, _ = _checkpoint(tmp_path)
    model, tok = hf.load_model(folder, dtype=torch.float16)
    assert next(model.parameters()).dtype == torch.float16 and not model.training and tok is not None
    with pytest.raises(FileNotFoundError, match="--model: no local model at"):
        hf.load_model(tmp_path / "nothing")


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma"])
def test_layer_signature_of_every_fused_family(family):
    layout = models.resolve(tiny_model(family))
    sig = hf.layer_signature(layout.layers[0])
    assert sig.first == "hidden_states" and sig.changes_the_math == ()
    assert sig.returns_tuple == (hf.transformers_version() < (4, 54))


def test_the_cache_goes_through_a_peft_wrapper():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_model("llama"), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        out = model(input_ids=PROMPT, use_cache=True)
        step = model(input_ids=torch.tensor([[5]]), **hf.cache_kwargs(model, hf.output_cache(out)))
        whole = model(input_ids=torch.cat([PROMPT, torch.tensor([[5]])], 1)).logits[0, -1]
    assert torch.allclose(step.logits[0, -1], whole, atol=1e-4)
