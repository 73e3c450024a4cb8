"""``hf.grouped_query_sdpa``: while focus training runs on the CPU, grouped-query attention shares its
key/value heads inside SDPA instead of repeating them, computing what transformers' SDPA computes
(with a padding mask, gradients included) and keeping the keys and values at their own head count."""
import pytest
import torch

from steerkit import hf
from steerkit.hf import attention
from tiny_models import FAMILIES, tiny_model

IDS = torch.randint(3, 64, (3, 16), generator=torch.Generator().manual_seed(1))
MASK = torch.ones_like(IDS)
MASK[0, 11:] = 0
MASK[2, 5:] = 0


def _run(model):
    out = model(input_ids=IDS, attention_mask=MASK, labels=IDS)
    return out.logits[MASK.bool()], torch.autograd.grad(out.loss, [p for p in model.parameters()], allow_unused=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_logits_and_gradients_as_sdpa_or_a_reason(family):
    model = tiny_model(family)  # float32: GPT-2's SDPA mask on 4.51 overflows in float64
    before = model.config._attn_implementation
    ref_logits, ref_grads = _run(model)
    with hf.grouped_query_sdpa(model) as why:
        switched = model.config._attn_implementation == hf.GQA_SDPA
        logits, grads = _run(model)
    assert model.config._attn_implementation == before
    cfg = model.config
    if before != "sdpa":
        assert why == "the model does not attend through SDPA"
    elif getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        assert why == "a sliding window, which a short probe cannot check"
    elif cfg.num_key_value_heads >= cfg.num_attention_heads if hasattr(cfg, "num_key_value_heads") else True:
        assert why.startswith("no grouped-query attention")
    else:
        assert why is None and switched
    assert (why is None) == switched
    assert torch.allclose(logits, ref_logits, rtol=1e-6, atol=1e-6)
    for g, r in zip(grads, ref_grads):  # the shared heads' gradients are summed in another order
        assert (g is None) == (r is None)
        if g is not None:
            assert torch.allclose(g, r, rtol=1e-5, atol=1e-7)


def test_llama_switches_and_keeps_keys_and_values_at_their_head_count():
    model = tiny_model("llama")  # 4 query heads, 2 key/value heads, head_dim 8
    shapes = []

    def pack(t):
        shapes.append(tuple(t.shape))
        return t

    def saved():
        shapes.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=IDS, attention_mask=MASK)
        return shapes.count((3, 2, 16, 8)), shapes.count((3, 4, 16, 8))

    kv_own, q_heads = saved()
    assert kv_own == 0  # transformers repeats them to 4 heads when there is a padding mask
    with hf.grouped_query_sdpa(model) as why:
        assert why is None
        kv_own_now, q_heads_now = saved()
    assert kv_own_now == 2 * 3 and q_heads_now == q_heads - 2 * 3  # key and value of 3 layers


def test_a_probe_that_disagrees_leaves_sdpa_in_place(monkeypatch):
    model = tiny_model("llama")

    def wrong(module, query, key, value, attention_mask, **kwargs):
        out = torch.zeros(query.shape[0], query.shape[2], query.shape[1], value.shape[-1])
        return out, None

    monkeypatch.setattr(attention, "_sdpa_gqa", wrong)
    with hf.grouped_query_sdpa(model) as why:
        assert why.startswith("a probe forward differs from SDPA's")
        assert model.config._attn_implementation == "sdpa"
    assert model.config._attn_implementation == "sdpa"


def test_an_error_inside_restores_sdpa_and_a_peft_model_switches_its_base():
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_model("llama"), peft.LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(RuntimeError, match="inside"):
        with hf.grouped_query_sdpa(model) as why:
            assert why is None and model.get_base_model().config._attn_implementation == hf.GQA_SDPA
            raise RuntimeError("inside")
    assert model.get_base_model().config._attn_implementation == "sdpa"
