"""One focus-training step (forward + backward + AdamW on the LoRA parameters) on the same batch:
HF + PEFT as they come, against steerkit's accelerations (fused LoRA linear and gated MLP, label-only loss), in one
run. Time is the median of timed steps after warm-up, both variants interleaved; peak memory is
measured per variant in a fresh subprocess (on CPU the resident set sampled every 0.2 ms during two
steps, above what it was before them; ``torch.cuda.max_memory_allocated`` on a GPU).

    python benches/focus_step.py --out benches/results/cpu            # CPU shape of issue 6
    python benches/focus_step.py --device cuda --preset llama3-8b-layers --out DIR
    python benches/focus_step.py --model smollm2 --out benches/results/cpu/smollm2   # a real model's weights
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

LIGER = "fused LoRA + Liger FLCE"


def _liger():
    """Liger-Kernel's fused linear cross-entropy, or None where liger-kernel is not importable (it needs
    a GPU's Triton; benches/gpu_session.sh installs it from .whl/)."""
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except Exception:  # ImportError, or a Triton that cannot initialise
        return None
    return LigerFusedLinearCrossEntropyLoss


# the last: Liger's fused linear cross-entropy over every position in place of the label-only loss
VARIANTS = ("hf+peft", "label-only loss only", "fused LoRA + MLP only", "steerkit") + ((LIGER,) if _liger() else ())
PRESETS = {
    # issue 6's CPU shape: a small Llama, prompts of 128-256 tokens with 1-3 target tokens, batch 8
    "cpu-small": dict(hidden=512, inter=1376, layers=4, heads=8, kv=8, vocab=32000, batch=8, lo=128, hi=256),
    # Llama-3-8B-shaped layers (2 of 32), random bf16 weights
    # the smoke run of benches/gpu_session.sh: checks the script, measures nothing
    "tiny": dict(hidden=64, inter=128, layers=2, heads=4, kv=2, vocab=512, batch=2, lo=16, hi=24),
    "llama3-8b-layers": dict(hidden=4096, inter=14336, layers=2, heads=32, kv=8, vocab=128256, batch=8, lo=128,
                             hi=256),
}


def build(p, device, dtype, seed=0, model_spec=None):
    """The preset's random Llama, or with ``model_spec`` a real checkpoint (steerkit.load_model: a folder,
    a .gguf file or a known name), with LoRA r=16 on every linear layer (B nonzero, so the LoRA branch
    is not a no-op)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if model_spec is not None:
        from steerkit.hf import load_model

        model = load_model(model_spec)[0].to(device=device, dtype=dtype)
        return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                init_lora_weights=False))
    cfg = LlamaConfig(hidden_size=p["hidden"], intermediate_size=p["inter"], num_hidden_layers=p["layers"],
                      num_attention_heads=p["heads"], num_key_value_heads=p["kv"], vocab_size=p["vocab"],
                      max_position_embeddings=1024, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(device=device, dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                             init_lora_weights=False))
    return model


def batch(p, device, seed=1, vocab=None):
    from steerkit.focus.encode import pad_batch

    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(p["batch"]):
        n = int(torch.randint(p["lo"], p["hi"] + 1, (1,), generator=g))
        t = int(torch.randint(1, 4, (1,), generator=g))
        ids = torch.randint(3, vocab or p["vocab"], (n + t,), generator=g).tolist()
        rows.append((ids[:n], ids[n:]))
    return {k: v.to(device) for k, v in pad_batch(rows, pad_id=0).items()}


def step_fn(model, variant):
    from steerkit.focus.loss import label_only_loss
    from steerkit.lora import accelerate

    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    handle = accelerate(model) if variant in ("steerkit", "fused LoRA + MLP only", LIGER) else None
    label_only = variant in ("steerkit", "label-only loss only")
    attention = None
    if variant in ("steerkit", LIGER):  # as focus.train: left switched until the process ends
        from steerkit.hf import grouped_query_sdpa

        attention = grouped_query_sdpa(model).__enter__() or "grouped-query SDPA"

    def step(b):
        if label_only:
            loss = label_only_loss(model, **b)
        elif variant == LIGER:
            loss = liger_loss(model, **b)
        else:
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    step.attention = attention  # what attention the variant ran: "grouped-query SDPA", or why not
    return step, handle


def liger_loss(model, input_ids, attention_mask, labels):
    """Liger's fused linear cross-entropy on the final hidden states of every position (-100 ignored):
    a pre-hook on the output head takes the hidden states and hands the head an empty slice, so no
    logits are built outside Liger's chunked kernel."""
    from steerkit.focus.loss import causal_lm

    head = causal_lm(model).get_output_embeddings()
    seen = {}

    def grab(module, args):
        seen["hidden"] = args[0]
        return (args[0][:, :0],) + tuple(args[1:])

    handle = head.register_forward_pre_hook(grab)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        handle.remove()
    hidden = seen["hidden"][:, :-1]
    return _liger()()(head.weight, hidden.reshape(-1, hidden.shape[-1]), labels[:, 1:].reshape(-1))


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_child(args):
    """In a fresh process: the step's peak memory above the model's (bytes)."""
    p = PRESETS[args.preset]
    dtype = getattr(torch, args.dtype)
    model = build(p, args.device, dtype, model_spec=args.model)
    b = batch(p, args.device, vocab=model.config.vocab_size)
    step, _ = step_fn(model, args.variant)
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(b)
        step(b)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        import gc
        import threading

        gc.collect()
        base = _rss_now()
        high, done = [base], threading.Event()

        def watch():  # RSS sampled every 0.2 ms: large CPU tensors are mmapped, so RSS follows them
            while not done.is_set():
                high[0] = max(high[0], _rss_now())
                time.sleep(0.0002)

        t = threading.Thread(target=watch)
        t.start()
        step(b)
        step(b)
        done.set()
        t.join()
        peak = high[0] - base
    print(json.dumps({"peak_bytes": peak}))


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="default: float32 on CPU, bfloat16 on CUDA")
    ap.add_argument("--preset", default=None, choices=sorted(PRESETS),
                    help="the shape; with --model, only its batch and prompt lengths are used")
    ap.add_argument("--model", default=None, help="a real model (steerkit.load_model: folder, .gguf or smollm2)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder for focus_step.json and focus_step.md")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.preset = args.preset or ("cpu-small" if args.device == "cpu" else "llama3-8b-layers")
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")
    if args.child:
        return peak_child(args)
    p, dtype = PRESETS[args.preset], getattr(torch, args.dtype)
    vocab = None
    if args.model:
        from steerkit.hf import load_model

        cfg = load_model(args.model)[0].config
        vocab = cfg.vocab_size
        p = p | dict(hidden=cfg.hidden_size, inter=cfg.intermediate_size, layers=cfg.num_hidden_layers,
                     heads=cfg.num_attention_heads, kv=cfg.num_key_value_heads, vocab=vocab)
    b = batch(p, args.device, vocab=vocab)
    tokens = int(b["attention_mask"].sum())
    targets = int((b["labels"] != -100).sum())
    runs = {}
    for variant in VARIANTS:
        model = build(p, args.device, dtype, model_spec=args.model)
        step, _ = step_fn(model, variant)
        runs[variant] = dict(model=model, step=step, times=[], first_loss=None)
    # parity: the same first loss from the same weights and batch
    for v, r in runs.items():
        r["first_loss"] = float(r["step"](b))
    for i in range(args.warmup + args.steps):
        for v, r in runs.items():
            sync(args.device)
            t0 = time.perf_counter()
            r["step"](b)
            sync(args.device)
            if i >= args.warmup:
                r["times"].append(time.perf_counter() - t0)
    result = dict(preset=args.preset, model=args.model, shape=p, device=args.device, dtype=args.dtype, tokens=tokens,
                  padded_tokens=int(b["input_ids"].numel()), target_tokens=targets, steps=args.steps,
                  torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
                  cpu_threads=torch.get_num_threads(), variants={})
    try:
        import peft
        import transformers

        result.update(peft=peft.__version__, transformers=transformers.__version__)
    except ImportError:
        pass
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    result["attention"] = runs["steerkit"]["step"].attention
    for v, r in runs.items():
        del r["model"]
    for v, r in runs.items():
        out = subprocess.run([sys.executable, __file__, "--child", "1", "--variant", v, "--device", args.device,
                              "--dtype", args.dtype, "--preset", args.preset]
                             + (["--model", args.model] if args.model else []), capture_output=True, text=True)
        peak = json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"] if out.returncode == 0 else None
        result["variants"][v] = dict(median_s=statistics.median(r["times"]), min_s=min(r["times"]),
                                     first_loss=r["first_loss"], peak_bytes=peak)
    hf, sk = result["variants"]["hf+peft"], result["variants"]["steerkit"]
    result["speedup"] = hf["median_s"] / sk["median_s"]
    result["memory_saving"] = 1 - sk["peak_bytes"] / hf["peak_bytes"] if hf["peak_bytes"] and sk["peak_bytes"] else None
    result["loss_rel_diff"] = abs(hf["first_loss"] - sk["first_loss"]) / abs(hf["first_loss"])
    what = f"{args.model} (batch and prompt lengths of {args.preset})" if args.model else args.preset
    md = [f"focus-training step, {what}, {args.device} {args.dtype}, batch {p['batch']}, "
          f"{tokens} real / {result['padded_tokens']} padded tokens, {targets} target tokens",
          "", "| variant | median step | peak memory of the step | first loss |", "|---|---|---|---|"]
    for v, r in result["variants"].items():
        mem = f"{r['peak_bytes'] / 2**20:.0f} MiB" if r["peak_bytes"] else "n/a"
        md.append(f"| {v} | {r['median_s'] * 1e3:.1f} ms | {mem} | {r['first_loss']:.5f} |")
    saving = f"{result['memory_saving'] * 100:.0f}%" if result["memory_saving"] is not None else "n/a"
    md += ["", "steerkit = steerkit.lora.accelerate (fused LoRA linear, gated MLP saving gate and up only) + label-only loss "
           f"+ attention: {result['attention']} (what focus.train does here; packing stays off with SDPA)"
           + ("; " + LIGER + " = accelerate() + Liger-Kernel's fused linear cross-entropy over every position"
              if LIGER in result["variants"] else "; Liger-Kernel not importable here, so not compared"),
           "", f"speedup {result['speedup']:.2f}x, peak memory {saving} lower, "
               f"loss relative difference {result['loss_rel_diff']:.1e}"]
    text = "\n".join(md)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "focus_step.json").write_text(json.dumps(result, indent=1))
        (out / "focus_step.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
