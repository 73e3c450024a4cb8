"""Activation collection: the captured rows are exactly the model's activations at the site (padding
excluded), the cache is reused only when nothing changed, and bad data is refused clearly."""
import json

import pytest
import torch

from steerkit import mat, models
from steerkit.mat.collect import kept_rows
from steerkit.sites import register_site_hook

from tiny_models import tiny_model


class WordTokenizer:
    """Maps each character to an id (3..63) after a BOS of 1: enough for tiny models, no downloads."""
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True, truncation=True, max_length=256, **_):
        ids = [1] + [3 + (ord(c) % 61) for c in text]
        return {"input_ids": ids[:max_length]}


EXAMPLES = [
    {"text": "good and kind", "attribute": "nice", "label": "positive"},
    {"text": "bad", "attribute": "nice", "label": "negative"},
    {"text": "rude words here", "attribute": "nice", "label": "negative"},
    {"text": "yes", "attribute": "short", "label": "positive"},
    {"text": "a much longer text", "attribute": "short", "label": "negative"},
]


def _direct(model, site, layer, text):
    """The site's activation for one unpadded text, captured by a hook of our own."""
    seen = {}

    def record(x):
        seen["x"] = x.detach()

    hook = register_site_hook(models.resolve(model), site, layer, record)
    try:
        ids = torch.tensor([WordTokenizer()(text)["input_ids"]])
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        hook.remove()
    return seen["x"].reshape(ids.shape[1], -1).float()


@pytest.mark.parametrize("family,site", [("llama", "attn_heads"), ("llama", "block_out"), ("gpt2", "mlp_out"),
                                         ("opt", "mlp_out"), ("gemma", "attn_heads")])
def test_all_tokens_match_unpadded_forward(family, site):
    model = tiny_model(family)
    acts = mat.collect_activations(model, WordTokenizer(), EXAMPLES, site=site, layer=1, batch_size=3, progress=False)
    assert acts.attributes == ["nice", "short"]
    want_pos = torch.cat([kept_rows(_direct(model, site, 1, "good and kind"), "all")])
    want_neg = torch.cat([kept_rows(_direct(model, site, 1, t), "all") for t in ("bad", "rude words here")])
    # one row per real token but each text's first: padding excluded
    assert acts.pos["nice"].shape == want_pos.shape
    assert torch.allclose(acts.pos["nice"], want_pos, atol=1e-5)
    assert torch.allclose(acts.neg["nice"], want_neg, atol=1e-5)


def test_block_out_is_hidden_states_after_the_layer():
    model = tiny_model("llama")
    acts = mat.collect_activations(model, WordTokenizer(), EXAMPLES, site="block_out", layer=0, progress=False)
    ids = torch.tensor([WordTokenizer()("yes")["input_ids"]])
    with torch.no_grad():
        hs = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0]
    assert torch.allclose(acts.pos["short"], kept_rows(hs, "all"), atol=1e-5)


def test_all_leaves_out_each_texts_first_token():
    x = torch.arange(12.0).reshape(4, 3)
    assert torch.equal(kept_rows(x, "all"), x[1:]) and torch.equal(kept_rows(x, "last"), x[3:])
    assert torch.equal(kept_rows(x[:1], "all"), x[:1])  # a one-token text keeps its token


def test_last_token_mode():
    model = tiny_model("llama")
    acts = mat.collect_activations(model, WordTokenizer(), EXAMPLES, site="attn_out", layer=2, tokens="last",
                                   progress=False)
    assert acts.neg["nice"].shape == (2, 32)
    assert torch.allclose(acts.neg["nice"][1], _direct(model, "attn_out", 2, "rude words here")[-1], atol=1e-5)


def test_cache_reused_only_when_nothing_changed(tmp_path):
    model = tiny_model("llama")
    tok = WordTokenizer()
    a = mat.collect_activations(model, tok, EXAMPLES, site="attn_heads", layer=1, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 1
    b = mat.collect_activations(model, tok, EXAMPLES, site="attn_heads", layer=1, cache_dir=tmp_path, progress=False)
    assert torch.equal(a.neg["short"], b.neg["short"]) and b.provenance == a.provenance
    mat.collect_activations(model, tok, EXAMPLES, site="attn_heads", layer=2, cache_dir=tmp_path, progress=False)
    mat.collect_activations(model, tok, EXAMPLES[:4] + [dict(EXAMPLES[4], text="other")], site="attn_heads", layer=1,
                            cache_dir=tmp_path, progress=False)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # same name and config, other weights
    mat.collect_activations(model, tok, EXAMPLES, site="attn_heads", layer=1, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.iterdir())) == 4


def test_jsonl_input(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in EXAMPLES) + "\n\n")
    acts = mat.collect_activations(tiny_model("llama"), WordTokenizer(), str(path), site="mlp_out", layer=0,
                                   progress=False)
    assert acts.attributes == ["nice", "short"] and acts.provenance["model_type"] == "llama"


@pytest.mark.parametrize("bad,match", [
    ([{"text": "x", "attribute": "", "label": "positive"}], "attribute must be a non-empty"),
    ([{"text": "x", "attribute": "a", "label": "positive"}], "no negative examples"),
    ([{"text": "x", "attribute": "a", "label": "negative"}], "no positive examples"),
    ([{"text": "x", "attribute": "a", "label": "good"}], "unknown label 'good'"),
    ([{"text": "", "attribute": "a", "label": "positive"}], "text must be"),
    ([{"attribute": "a", "label": "positive"}], "missing text"),
    ([], "no examples"),
])
def test_bad_data(bad, match):
    with pytest.raises(ValueError, match=match):
        mat.collect_activations(tiny_model("llama"), WordTokenizer(), bad, site="attn_heads", layer=0, progress=False)


def test_bad_arguments(tmp_path):
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="layer must be an int in 0..2"):
        mat.collect_activations(model, WordTokenizer(), EXAMPLES, site="attn_heads", layer=3, progress=False)
    with pytest.raises(ValueError, match="unknown site"):
        mat.collect_activations(model, WordTokenizer(), EXAMPLES, site="resid", layer=0, progress=False)
    with pytest.raises(ValueError, match="tokens must be"):
        mat.collect_activations(model, WordTokenizer(), EXAMPLES, site="attn_heads", layer=0, tokens="first")
    with pytest.raises(FileNotFoundError):
        mat.collect_activations(model, WordTokenizer(), tmp_path / "none.jsonl", site="attn_heads", layer=0)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1: not JSON"):
        mat.collect_activations(model, WordTokenizer(), tmp_path / "bad.jsonl", site="attn_heads", layer=0)
