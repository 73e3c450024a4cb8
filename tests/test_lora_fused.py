"""The fused LoRA linear against the reference in float64 and against PEFT's ``lora.Linear`` (output
and gradients), and ``accelerate()``: where it applies, why it does not, and that it undoes cleanly."""
import pytest
import torch

from steerkit import reference
from steerkit.lora import accelerate, lora_linear
from tiny_models import tiny_model

peft = pytest.importorskip("peft")


@pytest.mark.parametrize("shape,out,r,bias", [((7, 24), 40, 4, True), ((2, 5, 33), 17, 8, False), ((0, 16), 8, 2, True),
                                              ((1, 64), 96, 16, True)])
def test_fused_lora_linear_matches_the_reference_in_float64(shape, out, r, bias):
    g = torch.Generator().manual_seed(sum(shape) + out + r)
    din = shape[-1]
    x = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(out, din, dtype=torch.float64, generator=g)
    b = torch.randn(out, dtype=torch.float64, generator=g) if bias else None
    a = torch.randn(r, din, dtype=torch.float64, generator=g, requires_grad=True)
    bb = torch.randn(out, r, dtype=torch.float64, generator=g, requires_grad=True)
    y = lora_linear(x, w, b, a, bb, 0.5)
    ref = reference.lora_linear(x, w, b, a, bb, 0.5)
    assert y.shape == ref.shape and torch.allclose(y, ref, rtol=1e-12, atol=1e-12)
    dy = torch.randn_like(ref)
    got = torch.autograd.grad(y, (x, a, bb), dy)
    want = torch.autograd.grad(ref, (x, a, bb), dy)
    for gv, wv in zip(got, want):
        assert torch.allclose(gv, wv, rtol=1e-10, atol=1e-10)
    if x.numel():
        torch.autograd.gradcheck(lambda x, a, bb: lora_linear(x, w, b, a, bb, 0.5), (x, a, bb))


def test_fused_lora_linear_refuses_a_trainable_base_weight():
    w = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="frozen"):
        lora_linear(torch.randn(2, 3), w, None, torch.randn(1, 3), torch.randn(4, 1), 1.0)


def _peft_llama(**lora):
    from peft import LoraConfig, get_peft_model

    cfg = dict(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False) | lora
    return get_peft_model(tiny_model("llama"), LoraConfig(**cfg))


def test_accelerated_model_matches_peft_output_and_adapter_gradients():
    model = _peft_llama()
    ids = torch.randint(3, 64, (2, 10), generator=torch.Generator().manual_seed(1))
    keys = list(model.state_dict())
    params = [p for p in model.parameters() if p.requires_grad]
    ref = model(input_ids=ids, labels=ids)
    ref_grads = torch.autograd.grad(ref.loss, params)
    handle = accelerate(model)
    assert len(handle.fused) == 3 * 7 and not handle.skipped  # q k v o gate up down in 3 layers
    fast = model(input_ids=ids, labels=ids)
    assert torch.allclose(fast.logits, ref.logits, rtol=1e-5, atol=1e-6)
    for g, r in zip(torch.autograd.grad(fast.loss, params), ref_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-6)
    assert list(model.state_dict()) == keys  # nothing renamed: PEFT saves and loads as before
    assert not accelerate(model).fused  # applying twice is a no-op
    handle.remove()
    assert all("forward" not in m.__dict__ for m in model.modules())
    with model.disable_adapter():  # PEFT's own switches still work (they fall back to PEFT's path)
        plain = model(input_ids=ids).logits
    assert not torch.allclose(plain, ref.logits)


def test_accelerate_leaves_unsupported_layers_on_peft_with_a_reason(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="steerkit.lora"):
        h = accelerate(_peft_llama(lora_dropout=0.1))
    assert not h.fused and set(h.skipped.values()) == {"LoRA dropout > 0"}
    assert "left on PEFT's path: LoRA dropout > 0" in caplog.text
    assert set(accelerate(_peft_llama(use_dora=True)).skipped.values()) == {"DoRA or another LoRA variant"}
    model = _peft_llama()
    model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.requires_grad_(True)
    h = accelerate(model)
    assert h.skipped == {"base_model.model.model.layers.0.self_attn.q_proj": "the base layer trains "
                         "(bias='all' or unfrozen weights)"}


@pytest.mark.parametrize("n,din,out,r,bias,dtype", [(37, 48, 70, 4, True, torch.float32), (5, 16, 16, 16, False, torch.float32),
                                                    (33, 40, 24, 8, True, torch.float16)])
def test_triton_fused_lora_linear_matches_the_reference(monkeypatch, n, din, out, r, bias, dtype):
    pytest.importorskip("triton")
    from steerkit.backends.triton import interpreting

    if not interpreting() and not torch.cuda.is_available():
        pytest.skip("Triton needs a CUDA GPU or TRITON_INTERPRET=1")
    device = "cuda" if torch.cuda.is_available() and not interpreting() else "cpu"
    monkeypatch.setenv("STEERKIT_BACKEND", "two_gemm=triton")
    import steerkit.kernels.two_gemm as kernel

    calls = []
    real = kernel.two_gemm
    monkeypatch.setattr(kernel, "two_gemm", lambda *a, **k: calls.append(1) or real(*a, **k))
    g = torch.Generator().manual_seed(n + din + out + r)
    mk = lambda *s: (torch.randn(*s, generator=g, dtype=torch.float64) / s[-1] ** 0.5)  # noqa: E731
    x64, w64, a64, b64 = mk(n, din), mk(out, din), mk(r, din), mk(out, r)
    bias64 = mk(out) if bias else None
    dy64 = mk(n, out)
    ref_in = [t.clone().requires_grad_(True) for t in (x64, a64, b64)]
    ref = reference.lora_linear(ref_in[0], w64, bias64, ref_in[1], ref_in[2], 2.0)
    ref_grads = torch.autograd.grad(ref, ref_in, dy64)
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    ins = [cast(t).requires_grad_(True) for t in (x64, a64, b64)]
    y = lora_linear(ins[0], cast(w64), cast(bias64), ins[1], ins[2], 2.0)
    grads = torch.autograd.grad(y, ins, cast(dy64))
    assert len(calls) == 2  # the forward and the input gradient ran in the kernel
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    for got, want in [(y, ref)] + list(zip(grads, ref_grads)):
        err = (got.double().cpu() - want).norm() / want.norm()
        assert err <= tol, err
