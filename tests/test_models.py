"""The architecture registry resolves every supported family, base and causal-LM alike."""
import pytest
import torch
import transformers as T
from torch import nn

from steerkit import models

from tiny_models import FAMILIES, tiny_model


def test_every_registry_family_has_a_tiny_model():
    assert set(FAMILIES) == set(models.REGISTRY)


@pytest.mark.parametrize("family", FAMILIES)
def test_resolve(family):
    model = tiny_model(family)
    layout = models.resolve(model)
    assert layout.spec.family == family
    assert layout.num_layers == 3 and layout.hidden_size == model.config.hidden_size == 32
    expected_heads = 64 if family == "gemma" else 32
    assert layout.attn_heads_size == expected_heads and layout.site_size("attn_heads") == expected_heads
    assert layout.site_size("mlp_out") == 32
    for i in range(3):
        assert isinstance(layout.attn_out_proj(i), nn.Module) and isinstance(layout.mlp_out_proj(i), nn.Module)
    assert layout.final_norm is not None
    # the base model alone resolves to the same modules
    base_layout = models.resolve(model.base_model)
    assert base_layout.attn_out_proj(1) is layout.attn_out_proj(1)


def test_unknown_architecture_lists_families_and_manual_paths():
    model = T.BertModel(T.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=50))
    with pytest.raises(ValueError) as err:
        models.resolve(model)
    text = str(err.value)
    assert "'bert'" in text and "llama" in text and "gpt2" in text and "ArchSpec(" in text
    spec = models.ArchSpec("bert", layers="encoder.layer", attn_out_proj="attention.output.dense",
                           mlp_out_proj="output.dense", final_norm=None, norm_kind="layer")
    layout = models.resolve(model, spec)
    assert layout.num_layers == 1 and layout.hidden_size == 32


def test_bad_manual_paths_say_where_they_stopped():
    model = tiny_model("llama")
    spec = models.ArchSpec("llama", layers="layers", attn_out_proj="self_attn.out", mlp_out_proj="mlp.down_proj",
                           final_norm="norm")
    with pytest.raises(ValueError, match="attn_out_proj path 'self_attn.out'"):
        models.resolve(model, spec)
    with pytest.raises(ValueError, match="layers path 'blocks'"):
        models.resolve(model, models.ArchSpec("x", "blocks", "a", "b", None))


def test_tiny_models_run():
    for family in FAMILIES:
        out = tiny_model(family)(torch.tensor([[1, 5, 9, 3]]))
        assert out.logits.shape == (1, 4, 64)
