"""The fused gated MLP (``down(act(gate) * up)`` saving gate and up only) against the reference in
float64, and under ``accelerate()`` against each family's own MLP module: output, adapter gradients,
what autograd keeps, and every case where it must step aside."""
import pytest
import torch

from steerkit import models, reference
from steerkit.lora import accelerate
from steerkit.lora.gated_mlp import gated_down
from tiny_models import tiny_model

peft = pytest.importorskip("peft")

GATED = sorted(f for f, s in models.REGISTRY.items() if s.gated_mlp is not None)


@pytest.mark.parametrize("act", [torch.nn.SiLU(), torch.nn.GELU(approximate="tanh")], ids=["silu", "gelu_tanh"])
@pytest.mark.parametrize("lora,bias", [(True, False), (True, True), (False, False)])
def test_gated_down_matches_the_reference_in_float64(act, lora, bias):
    g = torch.Generator().manual_seed(7 + 2 * lora + bias)
    n, inter, out, r = 11, 24, 10, 4
    f64 = dict(dtype=torch.float64, generator=g)
    gate = torch.randn(3, n, inter, **f64).requires_grad_(True)
    up = torch.randn(3, n, inter, **f64).requires_grad_(True)
    w = torch.randn(out, inter, **f64)
    b = torch.randn(out, **f64) if bias else None
    a = torch.randn(r, inter, **f64).requires_grad_(True) if lora else None
    bb = torch.randn(out, r, **f64).requires_grad_(True) if lora else None
    y = gated_down(gate, up, act, w, b, a, bb, 0.5)
    ref = reference.gated_down(gate, up, act, w, b, a, bb, 0.5)
    assert y.shape == ref.shape == (3, n, out) and torch.allclose(y, ref, rtol=1e-12, atol=1e-12)
    leaves = (gate, up) + ((a, bb) if lora else ())
    dy = torch.randn(ref.shape, **f64)
    for got, want in zip(torch.autograd.grad(y, leaves, dy), torch.autograd.grad(ref, leaves, dy)):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    torch.autograd.gradcheck(lambda *t: gated_down(t[0], t[1], act, w, b, *(t[2:] or (None, None)), 0.5),
                             tuple(x[:, :2].detach().requires_grad_(True) if x.dim() == 3 else x for x in leaves))


def test_gated_down_refuses_bad_input():
    w = torch.randn(4, 6)
    with pytest.raises(ValueError, match="gate/up"):
        gated_down(torch.randn(2, 6), torch.randn(2, 5), torch.nn.SiLU(), w, None)
    with pytest.raises(ValueError, match="frozen"):
        gated_down(torch.randn(2, 6), torch.randn(2, 6), torch.nn.SiLU(), w.requires_grad_(True), None)


def _peft(family, **lora):
    from peft import LoraConfig, get_peft_model

    cfg = dict(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False) | lora
    return get_peft_model(tiny_model(family).double(), LoraConfig(**cfg))


def _loss_and_grads(model, ids):
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(input_ids=ids, labels=ids)
    return out.logits, torch.autograd.grad(out.loss, params)


IDS = torch.randint(3, 64, (2, 10), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", GATED)
def test_every_gated_family_fuses_its_mlps_and_matches_its_own_module(family):
    model = _peft(family)
    ref_logits, ref_grads = _loss_and_grads(model, IDS)
    handle = accelerate(model)
    assert len(handle.mlps) == 3 and not handle.mlps_skipped  # every layer
    logits, grads = _loss_and_grads(model, IDS)
    assert torch.allclose(logits, ref_logits, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-10, atol=1e-12)
    handle.remove()
    assert all("forward" not in vars(m) and "_steerkit_mlp_parts" not in vars(m) for m in model.modules())


def test_float32_training_gets_the_same_bits_with_and_without_the_fused_mlp():
    # the same ops in the same order, only recomputed: a FIT run's numbers do not move with it
    runs = []
    for mlp in (True, False):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(tiny_model("llama"), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                               init_lora_weights=False))
        assert len(accelerate(model, mlp=mlp).mlps) == (3 if mlp else 0)
        runs.append(_loss_and_grads(model, torch.randint(3, 64, (4, 50), generator=torch.Generator().manual_seed(1))))
    (logits, grads), (ref_logits, ref_grads) = runs
    assert torch.equal(logits, ref_logits) and all(torch.equal(g, r) for g, r in zip(grads, ref_grads))


def test_a_down_projection_without_lora_is_fused_too():
    model = _peft("llama", target_modules=["q_proj", "gate_proj", "up_proj"])
    ref_logits, ref_grads = _loss_and_grads(model, IDS)
    handle = accelerate(model)
    assert len(handle.mlps) == 3
    logits, grads = _loss_and_grads(model, IDS)
    assert torch.allclose(logits, ref_logits, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-10, atol=1e-12)


def _saved_storages(fn, numel):
    """How many distinct storages of ``numel`` elements autograd keeps for the backward of ``fn()``."""
    seen = set()

    def pack(t):
        if t.untyped_storage().nbytes() == numel * t.element_size():
            seen.add(t.untyped_storage().data_ptr())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return len(seen)


def test_the_fused_mlp_keeps_two_intermediate_tensors_where_autograd_keeps_four():
    model = _peft("llama")
    mlp = model.get_base_model().model.layers[0].mlp
    x = torch.randn(5, 7, 32, dtype=torch.float64)
    inter = 5 * 7 * 64  # [tokens, intermediate]
    assert _saved_storages(lambda: mlp(x), inter) == 4  # act's input, its output, up, the product
    handle = accelerate(model)
    assert _saved_storages(lambda: mlp(x), inter) == 2  # gate, up
    handle.remove()


def test_the_mlp_steps_aside_for_hooks_disabled_adapters_and_other_math(monkeypatch):
    model = _peft("llama")
    handle = accelerate(model)
    mlp = model.get_base_model().model.layers[1].mlp
    calls = []
    hook = mlp.down_proj.register_forward_hook(lambda m, a, o: calls.append(1))
    logits, _ = _loss_and_grads(model, IDS)
    assert calls == [1]  # the hook on the down projection ran: that MLP took its own forward
    hook.remove()
    with model.disable_adapter():  # PEFT's switch: the fused MLP must not add the LoRA branch
        plain = model(input_ids=IDS).logits
    handle.remove()
    with model.disable_adapter():
        assert torch.allclose(model(input_ids=IDS).logits, plain, rtol=1e-12, atol=1e-12)

    # a release whose MLP computes something else is caught by the probe, not fused
    from transformers.models.llama import modeling_llama

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward",
                        lambda self, x: self.down_proj(self.act_fn(self.up_proj(x)) * self.gate_proj(x)))
    h = accelerate(_peft("llama"))
    assert not h.mlps and len(h.mlps_skipped) == 3
    assert all("not down(act(gate(x)) * up(x))" in r for r in h.mlps_skipped.values())


def test_families_without_a_gated_mlp_say_so():
    h = accelerate(_peft("phi3"))
    assert not h.mlps and h.mlps_skipped == {"model": "phi3 has no gated MLP in separate modules"}
    assert len(h.fused) == 3 * 4  # its LoRA linears still run fused
