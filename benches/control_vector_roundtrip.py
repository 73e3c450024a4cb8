"""The README's "Vectors from elsewhere" round trip, as run on SmolLM2-135M-Instruct.

    python benches/control_vector_roundtrip.py --out benches/results/cpu/control_vectors

1. A mean-difference sentiment vector at ``block_out`` layer 12 (the steering benchmark's positive and
   negative sentences, 64 each, mean over tokens), saved as steerkit ``.safetensors``.
2. ``steerkit convert`` to a llama.cpp control vector (``.gguf``), and back.
3. Where repeng is installed: repeng's ``import_gguf`` reads the file, and greedy generation through
   repeng's ``ControlModel`` equals steerkit's ``steer()`` with the ``.gguf`` file, token for token.
4. ``steerkit convert`` of the benchmark's gated MAT-Steer vectors: refused, in one line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

import steerkit as sk
from steerkit import hf
from steerkit.steerbench.corpus import sentiment_texts

MAT = Path(__file__).resolve().parent / "results" / "cpu" / "steer_smollm2" / "vectors.safetensors"
LAYER, STRENGTH, TOKENS = 12, 4.0, 24
PROMPT = "Write one sentence about the weather today."


def mean_difference(model, tok, texts: dict, n: int = 64) -> torch.Tensor:
    means = {}
    for label in ("positive", "negative"):
        rows = []
        for text in texts[label][:n]:
            ids = tok(text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                h = model(ids, output_hidden_states=True).hidden_states[LAYER + 1][0]  # block LAYER's output
            rows.append(h.mean(0))
        means[label] = torch.stack(rows).mean(0)
    return means["positive"] - means["negative"]


def greedy(model, tok, ids) -> list:
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=TOKENS,
                             pad_token_id=tok.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def cli(*args) -> tuple:
    p = subprocess.run([sys.executable, "-m", "steerkit", *args], capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model, tok = hf.load_model("smollm2")
    model.eval()
    vec = mean_difference(model, tok, sentiment_texts())
    vec = vec / vec.norm() * 8.0  # a unit-free direction at a size that moves this model's text
    sk.SteeringVectors.from_tensors(vec[None], "block_out", LAYER, attributes=["sentiment"], provenance={
        "model_type": model.config.model_type, "method": "mean-difference", "layer": LAYER}).save(
        args.out / "sentiment.safetensors")
    report = {"convert_to_gguf": cli("convert", str(args.out / "sentiment.safetensors"), str(args.out / "sentiment.gguf")),
              "convert_back": cli("convert", str(args.out / "sentiment.gguf"), str(args.out / "back.safetensors")),
              "convert_mat": cli("convert", str(MAT), str(args.out / "mat.gguf"))}
    back = sk.SteeringVectors.load(args.out / "back.safetensors")
    report["round_trip_exact"] = bool(torch.equal(back[("block_out", LAYER)].theta[0], vec.float()))
    ids = tok(hf.chat_prompt(tok, PROMPT), return_tensors="pt", add_special_tokens=False)["input_ids"]
    plain = greedy(model, tok, ids)
    with sk.steer(model, sk.SteeringVectors.load(args.out / "sentiment.gguf"), strength=STRENGTH):
        steered = greedy(model, tok, ids)
    report["unsteered"], report["steered"] = tok.decode(plain), tok.decode(steered)
    try:
        import repeng
    except ImportError:
        report["repeng"] = "not installed"
    else:
        cv = repeng.ControlVector.import_gguf(str(args.out / "sentiment.gguf"))
        cm = repeng.ControlModel(model, [LAYER])
        try:
            cm.set_control(cv, STRENGTH)
            theirs = greedy(cm, tok, ids)
        finally:
            cm.unwrap()
        report["repeng"] = {"version": repeng.__dict__.get("__version__") or _version("repeng"),
                            "layers": sorted(cv.directions), "tokens_equal_steerkit": theirs == steered}
    for key, value in report.items():
        print(f"{key}: {value}")
    (args.out / "roundtrip.json").write_text(json.dumps(report, indent=1))
    for name in ("mat.gguf", "back.safetensors"):
        (args.out / name).unlink(missing_ok=True)
    return 0


def _version(dist: str):
    from importlib.metadata import version
    return version(dist)


if __name__ == "__main__":
    sys.exit(main())
