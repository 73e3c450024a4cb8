"""Patching tiny random models of every supported family: each property against a hand-written
reference (hooks written out in the test), in float32."""
import pytest
import torch

import steerkit
from steerkit import SteeringVectors, hf, models
from steerkit.vectors import Entry

from tiny_models import FAMILIES, tiny_model

IDS = torch.tensor([[1, 7, 12, 40, 3, 9], [1, 22, 5, 5, 61, 2]])
SITES = ["attn_heads", "attn_out", "mlp_out", "block_out"]


def _vectors(model, sites, layer=1, k=2, gated=True, seed=0):
    layout = models.resolve(model)
    g = torch.Generator().manual_seed(seed)
    entries = {}
    for site in sites:
        d = layout.site_size(site)
        entries[(site, layer)] = Entry(torch.randn(k, d, generator=g), torch.randn(k, d, generator=g) / d**0.5
                                       if gated else None, torch.randn(k, generator=g) if gated else None)
    return SteeringVectors(entries, gate_mode="sigmoid" if gated else "none")


def _logits(model, **kw):
    with torch.no_grad():
        return model(IDS, **kw).logits


@pytest.mark.parametrize("family", FAMILIES)
def test_strength_zero_and_remove_are_bit_identical(family):
    model = tiny_model(family)
    base = _logits(model)
    vecs = _vectors(model, SITES)
    with steerkit.steer(model, vecs, strength=0.0):
        assert torch.equal(_logits(model), base)
    handle = steerkit.patch(model, vecs, strength=3.0)
    assert not torch.equal(_logits(model), base)
    handle.set_strength(0.0)
    assert torch.equal(_logits(model), base)
    handle.set_strength(torch.tensor([1.0, -2.0]))
    assert not torch.equal(_logits(model), base)
    handle.remove()
    assert torch.equal(_logits(model), base)
    handle.remove()  # idempotent


@pytest.mark.parametrize("family", FAMILIES)
def test_block_out_without_gates_is_adding_the_vector(family):
    model = tiny_model(family)
    with torch.no_grad():
        ref = model(IDS, output_hidden_states=True).hidden_states
    vecs = _vectors(model, ["block_out"], layer=1, gated=False)
    theta = vecs[("block_out", 1)].theta
    s = torch.tensor([0.5, -1.5])
    with steerkit.steer(model, vecs, strength=s), torch.no_grad():
        got = model(IDS, output_hidden_states=True).hidden_states
    for i in range(2):  # embeddings and layer 0 untouched
        assert torch.equal(got[i], ref[i])
    assert torch.allclose(got[2], ref[2] + s @ theta, rtol=0, atol=1e-5)


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("family", FAMILIES)
def test_each_site_changes_exactly_its_tensor(family, site):
    """Against a hand-written hook doing the reference math at the same module."""
    model = tiny_model(family)
    vecs = _vectors(model, [site], layer=2)
    e = vecs[(site, 2)]
    layout = models.resolve(model)
    s = torch.tensor([1.5, -0.5])

    def ref_edit(x):
        out, _ = steerkit.reference.gated_steer(x.reshape(-1, x.shape[-1]), e.theta, e.gate_w, e.gate_b, s)
        return out.reshape(x.shape)

    if site == "attn_heads":
        h = layout.attn_out_proj(2).register_forward_pre_hook(lambda m, a: (ref_edit(a[0]),) + a[1:])
    elif site in ("attn_out", "mlp_out"):
        mod = layout.attn_out_proj(2) if site == "attn_out" else layout.mlp_out_proj(2)
        h = mod.register_forward_hook(lambda m, a, o: ref_edit(o))
    else:
        h = layout.layers[2].register_forward_hook(
            lambda m, a, o: (ref_edit(o[0]),) + o[1:] if isinstance(o, tuple) else ref_edit(o))
    want = _logits(model)
    h.remove()
    with steerkit.steer(model, vecs, strength=s):
        got = _logits(model)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, _logits(model), atol=1e-4), "the site must change the output"


@pytest.mark.parametrize("family", FAMILIES)
def test_per_sequence_strengths_equal_each_sequence_alone(family):
    model = tiny_model(family)
    vecs = _vectors(model, ["attn_heads", "mlp_out"])
    s = torch.tensor([[1.0, 0.0], [-0.5, 2.0]])
    with steerkit.steer(model, vecs, strength=s):
        batch = _logits(model)
    for b in range(2):
        with steerkit.steer(model, vecs, strength=s[b]), torch.no_grad():
            alone = model(IDS[b:b + 1]).logits
        assert torch.allclose(batch[b:b + 1], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_the_vectors(family):
    model = tiny_model(family)
    for p in model.parameters():
        p.requires_grad_(False)
    vecs = _vectors(model, ["attn_heads", "block_out"])
    handle = steerkit.patch(model, vecs)
    params = [t.requires_grad_() for e in (handle.steering.entry(k) for k in handle.vectors) for t in (e.theta, e.gate_w, e.gate_b)]
    model(IDS).logits.sum().backward()
    handle.remove()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_validation_leaves_the_model_untouched():
    model = tiny_model("llama")
    base = _logits(model)
    wrong_d = SteeringVectors.from_tensors(torch.randn(2, 48), site="mlp_out", layer=0)
    with pytest.raises(ValueError, match="D=48.*width 32.*another model"):
        steerkit.patch(model, wrong_d)
    too_deep = SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=7)
    with pytest.raises(ValueError, match="has 3 decoder layers"):
        steerkit.patch(model, too_deep)
    with pytest.raises(ValueError, match="strength must be"):
        steerkit.patch(model, SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=0),
                       strength=torch.ones(3))
    assert torch.equal(_logits(model), base)
    assert not getattr(model, "_steerkit_patched", {})


def test_patching_twice_raises_unless_replaced():
    model = tiny_model("llama")
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=0)
    first = steerkit.patch(model, vecs, strength=1.0)
    with pytest.raises(ValueError, match="already steered"):
        steerkit.patch(model, vecs)
    second = steerkit.patch(model, vecs, strength=2.0, replace=True)
    with steerkit.steer(model, vecs, strength=2.0, replace=True):
        twice = _logits(model)
    second.remove()
    first.remove()
    base = _logits(model)
    with steerkit.steer(model, vecs, strength=2.0):
        assert torch.equal(_logits(model), twice)
    assert torch.equal(_logits(model), base)


PROMPTS = torch.tensor([[1, 7, 12, 40, 3], [1, 22, 5, 61, 9]])


def _generate(model, ids, mask=None, use_cache=True, n=5):
    with torch.no_grad():
        return model.generate(ids, attention_mask=mask if mask is not None else torch.ones_like(ids),
                              max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache,
                              pad_token_id=0)


@pytest.mark.parametrize("tokens", ["all", "prompt", "generated", 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cached_generation_equals_uncached(family, tokens):
    """Without a cache every call re-reads the prompt and what followed; the token policy must steer
    the same tokens either way."""
    model = tiny_model(family)
    vecs = _vectors(model, ["attn_heads", "block_out"], gated=False)
    with steerkit.steer(model, vecs, strength=4.0, tokens=tokens):
        cached = _generate(model, PROMPTS, use_cache=True)
        uncached = _generate(model, PROMPTS, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, _generate(model, PROMPTS)), "steering must change the text"


@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cached_left_padded_generation_equals_uncached_under_generated(family):
    model = tiny_model(family)
    vecs = _vectors(model, ["attn_heads", "block_out"], gated=False)
    ids = torch.tensor([[0, 0, 1, 7, 12], [1, 22, 5, 61, 9]])
    mask = (ids != 0).long()
    with steerkit.steer(model, vecs, strength=4.0, tokens="generated"):
        cached = _generate(model, ids, mask, use_cache=True)
        uncached = _generate(model, ids, mask, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, _generate(model, ids, mask)), "steering must change the text"


@pytest.mark.parametrize("family", FAMILIES)
def test_generated_only_leaves_the_prompt_untouched(family):
    """Under KV-cached generation: the logits the prompt's prefill gives are bit-identical to unsteered,
    the logits of every decode step are steered, and the decoded tokens change."""
    model = tiny_model(family)
    vecs = _vectors(model, SITES, gated=False)
    base = _logits(model)

    def run():
        with torch.no_grad():
            out = model.generate(PROMPTS, attention_mask=torch.ones_like(PROMPTS), max_new_tokens=4,
                                 min_new_tokens=4, do_sample=False, pad_token_id=0, output_logits=True,
                                 return_dict_in_generate=True)
        return out.sequences, out.logits  # logits[0] from the prefill, logits[i > 0] from decode steps

    plain, plain_logits = run()
    with steerkit.steer(model, vecs, strength=5.0, tokens="generated"):
        assert torch.equal(_logits(model), base), "a prefill is all prompt"
        steered, logits = run()
    assert torch.equal(logits[0], plain_logits[0]), "the prompt's logits are untouched"
    assert all(not torch.allclose(a, b, atol=1e-4) for a, b in zip(logits[1:], plain_logits[1:])), \
        "every generated token is steered"
    assert not torch.equal(steered, plain), "generated tokens change"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_decode_step_without_a_mask_is_placed_by_the_cache(family):
    """A call with a cache and no attention mask (what generate() sends from transformers 5.24 when nothing
    is padded): its token is after the prompt, so 'generated' steers it."""
    model = tiny_model(family)
    vecs = _vectors(model, SITES, gated=False)

    def step():
        with torch.no_grad():
            out = model(PROMPTS, use_cache=True)
            cache = hf.output_cache(out)
            if type(cache).__name__ == "HybridCache":
                pytest.skip("this release's Gemma-2 sizes the HybridCache of a plain forward to the prompt")
            return out.logits, model(torch.tensor([[4], [4]]), **hf.cache_kwargs(model, cache)).logits

    plain_prompt, plain_step = step()
    with steerkit.steer(model, vecs, strength=5.0, tokens="generated"):
        prompt, steered_step = step()
    assert torch.equal(prompt, plain_prompt)
    assert not torch.allclose(steered_step, plain_step, atol=1e-4)


def test_position_policy_is_padding_independent():
    """Steering from absolute position 2 gives the same logits for a sequence whether it is left-padded,
    right-padded or alone (positions come from the attention mask, not the call's shape)."""
    model = tiny_model("llama")
    vecs = _vectors(model, ["mlp_out"], gated=False)
    seq = torch.tensor([[1, 7, 12, 40]])
    with steerkit.steer(model, vecs, strength=3.0, tokens=2), torch.no_grad():
        alone = model(seq).logits[0]
        left = model(torch.tensor([[0, 0, 1, 7, 12, 40]]), attention_mask=torch.tensor([[0, 0, 1, 1, 1, 1]]),
                     position_ids=torch.tensor([[0, 0, 0, 1, 2, 3]])).logits[0, 2:]
        right = model(torch.tensor([[1, 7, 12, 40, 0, 0]]),
                      attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]])).logits[0, :4]
    with torch.no_grad():
        plain = model(seq).logits[0]
    assert torch.allclose(left, alone, atol=1e-4) and torch.allclose(right, alone, atol=1e-5)
    assert torch.equal(alone[:2], plain[:2]) and not torch.allclose(alone[2:], plain[2:], atol=1e-4)


def test_bad_token_policy():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="tokens must be"):
        steerkit.patch(model, _vectors(model, ["mlp_out"]), tokens="middle")
    assert not model._forward_pre_hooks


@pytest.mark.parametrize("family, tokens", [(f, "all") for f in FAMILIES] + [("llama", 2)])
def test_compiled_model_matches_eager(family, tokens):
    model = tiny_model(family)
    vecs = _vectors(model, ["attn_heads", "mlp_out", "block_out"])
    with steerkit.steer(model, vecs, strength=2.0, tokens=tokens) as handle:
        eager = _logits(model)
        compiled = torch.compile(model)
        with torch.no_grad():
            got = compiled(IDS).logits
        assert torch.allclose(got, eager, rtol=1e-4, atol=1e-4)
        handle.set_strength(torch.tensor([0.0, 0.0]))  # a new strength is honoured by the compiled model
        with torch.no_grad():
            assert torch.allclose(compiled(IDS).logits, _logits(model), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tokens", ["all", 1])
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batch_with_per_sequence_strengths_equals_each_alone(family, tokens):
    model = tiny_model(family)
    vecs = _vectors(model, ["attn_heads", "block_out"])
    seqs = [torch.tensor([1, 7, 12]), torch.tensor([1, 22, 5, 5, 61])]
    s = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    ids = torch.tensor([[0, 0, 1, 7, 12], [1, 22, 5, 5, 61]])  # left padding
    mask = (torch.arange(5)[None, :] >= torch.tensor([[2], [0]])).long()
    pos = (mask.cumsum(1) - 1).clamp_min(0)
    with steerkit.steer(model, vecs, strength=s, tokens=tokens), torch.no_grad():
        batch = model(ids, attention_mask=mask, position_ids=pos).logits
    for b, seq in enumerate(seqs):
        with steerkit.steer(model, vecs, strength=s[b], tokens=tokens), torch.no_grad():
            alone = model(seq[None]).logits[0]
        assert torch.allclose(batch[b, -len(seq):], alone, rtol=1e-4, atol=1e-4)


def test_vectors_made_for_another_architecture_are_refused():
    model = tiny_model("llama")
    vecs = SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=0,
                                        provenance={"model_type": "gpt2"})
    with pytest.raises(ValueError, match="made for a 'gpt2' model.*this model is 'llama'"):
        steerkit.patch(model, vecs)
    assert not getattr(model, "_steerkit_patched", {})
    ok = SteeringVectors.from_tensors(torch.randn(2, 32), site="mlp_out", layer=0, provenance={"model_type": "llama"})
    steerkit.patch(model, ok).remove()
