"""The fast paths a patch takes (fused decoder-layer forward, attn_heads folded through o_proj)
against the hook path, per family: same outputs, paths reported, exact removal, strict mode,
fallbacks with reasons, gradients, KV-cached generation and torch.compile."""
import pytest
import torch

import steerkit
from steerkit import SteeringVectors, fastpath, models
from steerkit.vectors import Entry

from tiny_models import FAMILIES, tiny_model

IDS = torch.tensor([[1, 7, 12, 40, 3, 9], [1, 22, 5, 5, 61, 2]])
SITES = ["attn_heads", "attn_out", "mlp_out", "block_out"]
FUSED_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma"}


def _vectors(model, layers=(0, 2), k=2, norm_preserve=False, seed=0):
    layout = models.resolve(model)
    g = torch.Generator().manual_seed(seed)
    entries = {}
    for site in SITES:
        d = layout.site_size(site)
        for layer in layers:
            entries[(site, layer)] = Entry(torch.randn(k, d, generator=g) * 0.5,
                                           torch.randn(k, d, generator=g) / d**0.5, torch.randn(k, generator=g))
    return SteeringVectors(entries, norm_preserve=norm_preserve)


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


def _replaced_forwards(model):
    return [name for name, m in model.named_modules() if "forward" in vars(m)]


@pytest.mark.parametrize("norm_preserve", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_fast_paths_equal_the_hooks_and_say_which_they_took(family, norm_preserve):
    model = tiny_model(family)
    vecs = _vectors(model, norm_preserve=norm_preserve)
    s = torch.tensor([1.5, -0.5])
    base = _logits(model)
    with steerkit.steer(model, vecs, strength=s, fused=False) as h:
        want = _logits(model)
        assert {p for p, _ in h.paths.values()} == {"hook"}
    with steerkit.steer(model, vecs, strength=s) as h:
        got = _logits(model)
        paths = {k: p for k, (p, _) in h.paths.items()}
        assert h.describe().count("\n") == len(vecs) - 1
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want, base, atol=1e-3)
    fused = family in FUSED_FAMILIES
    for layer in (0, 2):
        assert paths[("attn_out", layer)] == paths[("mlp_out", layer)] == ("fused" if fused else "hook")
        assert paths[("attn_heads", layer)] == ("hook" if family == "gpt2" else "folded")
        assert paths[("block_out", layer)] == "hook"
    assert _replaced_forwards(model) == []  # removal restores every instance's own forward
    assert torch.equal(_logits(model), base)


@pytest.mark.parametrize("family", ["llama", "gemma"])
@pytest.mark.parametrize("tokens", ["all", "prompt", "generated", 3])
def test_kv_cached_generation_is_the_same_on_fast_paths(family, tokens):
    model = tiny_model(family)
    vecs = _vectors(model)
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    outs = []
    for fused in (False, "auto"):
        with steerkit.steer(model, vecs, strength=torch.tensor([[2.0, 0.0], [0.5, -1.0]]), tokens=tokens,
                            fused=fused), torch.no_grad():
            outs.append(model.generate(IDS, attention_mask=torch.ones_like(IDS), **kw))
    assert torch.equal(outs[0], outs[1])


def test_strict_mode_lists_what_cannot_be_fast_and_leaves_the_model_alone():
    model = tiny_model("gpt2")
    base = _logits(model)
    with pytest.raises(ValueError, match=r"(?s)fused=True.*attn_heads layer 0: the output projection is a GPT-2 Conv1D"
                                         r".*block_out layer 0"):
        steerkit.patch(model, _vectors(model), fused=True)
    assert torch.equal(_logits(model), base) and not getattr(model, "_steerkit_patched", None)
    with pytest.raises(ValueError, match="fused must be 'auto', True or False"):
        steerkit.patch(model, _vectors(model), fused="yes")


def test_lora_on_o_proj_keeps_attn_heads_on_the_hook_path():
    peft = pytest.importorskip("peft")
    model = tiny_model("llama")
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["o_proj"], init_lora_weights=False))
    vecs = _vectors(model, layers=(1,))
    with steerkit.steer(lora, vecs, fused=False):
        want = _logits(lora)
    with steerkit.steer(lora, vecs) as h:
        got = _logits(lora)
        path, why = h.paths[("attn_heads", 1)]
    assert path == "hook" and "LoRA adapter" in why and "Linear" in why
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_layer_already_replaced_falls_back_to_hooks():
    model = tiny_model("llama")
    first = steerkit.patch(model, SteeringVectors({("attn_out", 0): Entry(torch.randn(1, 32))}, gate_mode="none"))
    second = steerkit.patch(model, SteeringVectors({("mlp_out", 0): Entry(torch.randn(1, 32))}, gate_mode="none"))
    assert first.paths[("attn_out", 0)][0] == "fused"
    assert second.paths[("mlp_out", 0)] == ("hook", fastpath.why_not_fused(models.resolve(model), 0))
    assert "already replaced" in second.paths[("mlp_out", 0)][1]
    second.remove()
    first.remove()
    assert _replaced_forwards(model) == []


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_gradients_through_fast_paths_equal_the_hooks(family):
    grads = []
    for fused in (False, "auto"):
        model = tiny_model(family)
        vecs = _vectors(model)
        strength = torch.tensor([1.0, -0.5], requires_grad=True)
        handle = steerkit.patch(model, vecs, strength=strength, fused=fused)
        leaves = [t.requires_grad_() for e in (handle.steering.entry(k) for k in handle.vectors) for t in (e.theta, e.gate_w)]
        model(IDS).logits.square().mean().backward()
        grads.append([strength.grad] + [t.grad for t in leaves] + [p.grad for p in model.parameters()])
        handle.remove()
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_triton_kernels_inside_a_patched_model(use_backend):
    from conftest import skip_unless_runnable
    skip_unless_runnable("triton", torch.float32)
    model = tiny_model("llama")
    vecs = _vectors(model, norm_preserve=True)
    with steerkit.steer(model, vecs, fused=False):
        want = _logits(model)
    use_backend("triton")
    with steerkit.steer(model, vecs):
        got = _logits(model)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_compiled_fast_paths_have_no_graph_break_and_no_recompile_on_new_strengths():
    torch._dynamo.reset()
    model = tiny_model("llama")
    vecs = _vectors(model)
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    with steerkit.steer(model, vecs, strength=torch.tensor([1.0, 2.0])) as handle:
        assert {"fused", "folded"} <= {p for p, _ in handle.paths.values()}
        compiled = torch.compile(model, backend=counting_backend, fullgraph=True)  # a graph break raises
        with torch.no_grad():
            first = compiled(IDS).logits
            assert torch.allclose(first, _logits(model), rtol=1e-5, atol=1e-5)
            for s in ([0.0, 0.0], [-1.0, 3.0]):
                handle.set_strength(torch.tensor(s))
                assert torch.allclose(compiled(IDS).logits, _logits(model), rtol=1e-5, atol=1e-5)
    assert len(graphs) == 1


def test_patching_an_already_compiled_model_takes_effect_on_fast_paths():
    """Dynamo does not guard on hooks added after compiling, but it does guard on a replaced forward:
    fast paths installed after torch.compile re-trace instead of being silently skipped."""
    torch._dynamo.reset()
    model = tiny_model("llama")
    every = _vectors(model)
    vecs = SteeringVectors({k: every[k] for k in every if k[0] in ("attn_out", "mlp_out")})
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        base = compiled(IDS).logits
        with steerkit.steer(model, vecs, strength=2.0):
            want = _logits(model)
            got = compiled(IDS).logits
        assert torch.allclose(compiled(IDS).logits, base)
    assert not torch.allclose(want, base, atol=1e-3)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_attentions_and_hidden_states_come_out_as_on_the_hook_path():
    model = tiny_model("llama")
    model.config._attn_implementation = "eager"  # attention weights are returned by eager attention
    vecs = _vectors(model)
    outs = []
    for fused in (False, "auto"):
        with steerkit.steer(model, vecs, fused=fused), torch.no_grad():
            outs.append(model(IDS, output_attentions=True, output_hidden_states=True))
    (a, b) = outs
    assert len(a.attentions) == len(b.attentions) == 3 and len(a.hidden_states) == len(b.hidden_states) == 4
    for x, y in zip(a.attentions + a.hidden_states, b.attentions + b.hidden_states):
        assert torch.allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_refused_replace_leaves_the_earlier_steering_exactly_as_it_was(family):
    """patch(v) then patch(v, replace=True, fused=True) that cannot be all-fast: the error comes before
    the first patch is touched, so the model stays steered as before, and its removal restores it."""
    model = tiny_model(family)
    vecs = _vectors(model)  # block_out has no fast path on any family; gpt2 has none at all
    base = _logits(model)
    first = steerkit.patch(model, vecs, strength=1.5)
    steered = _logits(model)
    before = (_replaced_forwards(model), {k: h is first for k, h in model._steerkit_patched.items()})
    with pytest.raises(ValueError, match="fused=True, but these cannot take a fast path"):
        steerkit.patch(model, vecs, strength=-3.0, replace=True, fused=True)
    assert torch.equal(_logits(model), steered)
    assert (_replaced_forwards(model), {k: h is first for k, h in model._steerkit_patched.items()}) == before
    first.remove()
    assert torch.equal(_logits(model), base) and _replaced_forwards(model) == []


def test_a_replace_takes_over_the_fast_paths_it_replaces():
    model = tiny_model("llama")
    vecs = SteeringVectors({("attn_out", 0): Entry(torch.randn(1, 32)), ("attn_heads", 1): Entry(torch.randn(1, 32))},
                           gate_mode="none")
    steerkit.patch(model, vecs, strength=1.0)
    second = steerkit.patch(model, vecs, strength=2.0, replace=True, fused=True)
    assert {p for p, _ in second.paths.values()} == {"fused", "folded"}
    with steerkit.steer(tiny_model("llama"), vecs, strength=2.0, fused=False) as alone:
        want = _logits(alone.model)
    assert torch.allclose(_logits(model), want, rtol=1e-5, atol=1e-5)
    second.remove()
    assert _replaced_forwards(model) == [] and not model._steerkit_patched


def test_the_fused_forward_passes_unknown_layer_arguments_through_and_names_what_it_refuses():
    """A layer whose forward takes a keyword the fused forward never heard of still takes the fast path
    (the keyword goes on to the attention, as the layer passes it); one that takes an argument that
    changes the math, or holds a module the mirrored sequence would skip, is refused by name."""
    model = tiny_model("llama")
    layer_cls = type(model.model.layers[0])

    class NewKeyword(layer_cls):
        def forward(self, hidden_states, attention_mask=None, brand_new_flag=None, **kwargs):
            return super().forward(hidden_states, attention_mask=attention_mask, **kwargs)

    class CrossAttention(layer_cls):
        def forward(self, hidden_states, encoder_hidden_states=None, **kwargs):
            return super().forward(hidden_states, **kwargs)

    vecs = SteeringVectors({("mlp_out", 0): Entry(torch.randn(1, 32))}, gate_mode="none")
    with steerkit.steer(model, vecs, fused=False):
        want = _logits(model)
    layer = model.model.layers[0]
    layer.__class__ = NewKeyword
    with steerkit.steer(model, vecs) as h:
        assert h.paths[("mlp_out", 0)][0] == "fused"
        assert torch.allclose(_logits(model), want, rtol=1e-5, atol=1e-5)
    layer.__class__ = CrossAttention
    with steerkit.steer(model, vecs) as h:
        path, why = h.paths[("mlp_out", 0)]
    assert path == "hook" and "encoder_hidden_states" in why
    layer.__class__ = layer_cls
    layer.extra_norm = torch.nn.LayerNorm(32)
    with steerkit.steer(model, vecs) as h:
        path, why = h.paths[("mlp_out", 0)]
    assert path == "hook" and "extra_norm" in why
