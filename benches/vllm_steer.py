"""vLLM with steerkit's plugin: unsteered, half the requests steered, and all steered, in one engine and one
run, so the ratios compare like with like. K=3 gated vectors at 4 layers (block_out), one steering set.

    python benches/vllm_steer.py                       # the CPU form: a tiny Llama built here
    python benches/vllm_steer.py --shape llama3-8b     # a GPU: Llama-3-8B shapes, dummy weights, CUDA graphs on

Prints a markdown table and writes JSON (--out). Throughput is output tokens per second over the whole
batch; time per output token is the wall time of a run over its decode steps (all requests decode together).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "tiny": (256, 512, 4, 4, 2, None),
    "llama3-8b": (4096, 14336, 32, 32, 8, 128256),
}


def _model(root: Path, shape: str) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from steerkit.toy.model import build_tokenizer
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
    return path


def _vectors(root: Path, shape: str) -> str:
    import torch

    import steerkit as sk
    from steerkit.vectors import Entry
    hidden, _, layers, *_ = SHAPES[shape]
    g = torch.Generator().manual_seed(0)
    entries = {("block_out", layer): Entry(torch.randn(3, hidden, generator=g) * 0.5,
                                                      torch.randn(3, hidden, generator=g) * 0.05,
                                                      torch.zeros(3))
               for layer in [layers * i // 4 for i in range(4)]}
    path = root / "vectors.safetensors"
    sk.SteeringVectors(entries, gate_mode="sigmoid").save(path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eager", action="store_true", help="enforce_eager (no compile, no CUDA graphs)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)

    import torch
    from vllm import LLM, SamplingParams

    root = Path(tempfile.mkdtemp(prefix="steerkit-vllm-bench-"))
    model, vectors = _model(root, args.shape), _vectors(root, args.shape)
    on_gpu = torch.cuda.is_available()
    llm = LLM(model=str(model), dtype="bfloat16" if on_gpu else "float32", gpu_memory_utilization=0.5 if on_gpu else 0.1,
              max_model_len=args.prompt_tokens + args.output_tokens + 8, seed=0, enforce_eager=args.eager,
              load_format="dummy" if SHAPES[args.shape][5] else "auto", skip_tokenizer_init=True,
              additional_config={"steerkit": {"vectors": {"v": vectors}}})
    prompts = [{"prompt_token_ids": [(7 * i + j) % 40 + 3 for j in range(args.prompt_tokens)]} for i in range(args.requests)]
    steer = {"steerkit_vectors": "v", "steerkit_strength": [1.0, 0.5, -0.5]}

    def params(steered: int):
        return [SamplingParams(max_tokens=args.output_tokens, temperature=0.0, ignore_eos=True,
                               extra_args=steer if i < steered else None) for i in range(args.requests)]

    modes = {"unsteered": 0, "half steered": args.requests // 2, "all steered": args.requests}
    llm.generate(prompts, params(args.requests), use_tqdm=False)  # warm-up: compile, caches
    times = {m: [] for m in modes}
    for _ in range(args.repeats):  # interleaved, so drift hits every mode alike
        for mode, steered in modes.items():
            t = time.perf_counter()
            outs = llm.generate(prompts, params(steered), use_tqdm=False)
            times[mode].append(time.perf_counter() - t)
            assert all(len(o.outputs[0].token_ids) == args.output_tokens for o in outs)
    base = statistics.median(times["unsteered"])
    rows = []
    for mode in modes:
        wall = statistics.median(times[mode])
        rows.append({"mode": mode, "wall_s": wall, "tokens_per_s": args.requests * args.output_tokens / wall,
                     "ms_per_output_token": 1e3 * wall / args.output_tokens, "vs_unsteered": wall / base})
    print(f"| {args.shape}, {args.requests} requests x {args.output_tokens} tokens, "
          f"{'eager' if args.eager else 'compiled'} | tokens/s | ms per output token | vs unsteered |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['tokens_per_s']:.0f} | {r['ms_per_output_token']:.2f} | {r['vs_unsteered']:.3f}x |")
    if args.out is not None:
        import vllm
        args.out.write_text(json.dumps({"shape": args.shape, "requests": args.requests, "eager": args.eager,
                                        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
                                        "vllm": vllm.__version__, "torch": torch.__version__, "rows": rows,
                                        "times_s": times}, indent=1))


if __name__ == "__main__":
    main()
