"""The GPU benchmark: ceilings, gated_steer, the fused ops, steered decoding and prefill.

    python benches/gpu.py --out benches/results/<device>          # one GPU, everything
    python benches/gpu.py --device cpu --preset tiny --out /tmp/x  # the CPU smoke run the tests make

Writes ``gpu.json``, ``gpu.md`` and ``gpu.png`` into ``--out``. Sections (``--sections``):

* ``ceilings``: measured copy bandwidth and bf16 matmul rate (CUDA only).
* ``gated_steer``: every backend, forward and backward (``gpu_gated_steer.py``'s grid; CUDA only).
* ``fused``: ``steer_add_rmsnorm`` against the same math unfused (gated_steer, add, HF's RMSNorm) and
  against the unsteered add + RMSNorm; ``steer_linear`` (steer folded through o_proj; its GEMM in
  Triton with the steer in the epilogue, and on torch's GEMM) against steering then the projection
  and against the projection alone. Bytes counted: the fused norm
  reads branch and residual and writes the new residual and the normed row (4·N·D·2 bytes); the
  projection is timed, not counted.
* ``decode``: a Llama-3-8B-shaped model (random bf16 weights from a config), batch 1/8/64, prompt
  512, 128 new tokens with a static KV cache: unsteered, steerkit (3 attributes at 4 layers, fast
  paths) and a plain forward-hook implementation of the same math, eager and compiled
  (``torch.compile(mode="reduce-overhead")``: CUDA graphs). Strengths change between timed runs
  of the compiled model without a re-capture.
* ``prefill``: the same model and variants on one 4096-token sequence.

Before anything is timed, each steered variant's logits are checked against the hook
implementation (and shown to differ from the unsteered ones), so no zero or broken path is timed.
Every measurement that fails is recorded with its error instead of ending the run; ``--budget-s``
skips what is left (and says so) once the run has taken that long.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import steerkit  # noqa: E402
from steerkit import (
    SteeringVectors,  # noqa: E402
    hf,  # noqa: E402
)
from steerkit.ops import gated_steer, steer_add_rmsnorm, steer_linear  # noqa: E402
from steerkit.ops.steer_linear import fold  # noqa: E402
from steerkit.reference import rms_norm  # noqa: E402
from steerkit.vectors import Entry  # noqa: E402

PRESETS = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=256, max_position_embeddings=2048),
}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn, device: str, reps: int = 20) -> float:
    """Median milliseconds of ``fn()``: triton's do_bench (L2 flushed) on CUDA, a timed loop elsewhere."""
    if device == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


# -- fused op micro-benchmarks ----------------------------------------------------------------------

def bench_fused(device, dtype, ns, d, k, out_features, copy_gbps, rows=None):
    rows = [] if rows is None else rows  # filled as each size finishes
    g = torch.Generator(device=device).manual_seed(0)
    kw = dict(device=device, dtype=dtype, generator=g)
    theta = torch.randn(k, d, **kw) * 0.5
    gw = torch.randn(k, d, **kw) / d**0.5
    gb = torch.randn(k, device=device, generator=g)
    s = torch.rand(k, device=device, generator=g)
    nw = 1 + 0.1 * torch.randn(d, **kw)
    proj = torch.randn(out_features, d, **kw) / d**0.5
    folded = fold(proj, theta)
    for n in ns:
        branch, residual = torch.randn(n, d, **kw), torch.randn(n, d, **kw) * 3
        fused = lambda: steer_add_rmsnorm(branch, residual, theta, gw, gb, s, True, nw, 1e-5, check_finite=False)
        unfused = lambda: (lambda r: (r, rms_norm(r, nw, 1e-5)))(
            residual + gated_steer(branch, theta, gw, gb, s, True, check_finite=False))
        plain = lambda: (lambda r: (r, rms_norm(r, nw, 1e-5)))(residual + branch)
        got, want = fused(), unfused()
        err = max(rel(got[0], want[0]), rel(got[1], want[1]))
        if not err < 2e-2:
            raise RuntimeError(f"steer_add_rmsnorm N={n}: rel err {err:.2e} against the unfused math")
        t = {name: median_ms(fn, device) for name, fn in (("fused", fused), ("unfused", unfused), ("unsteered", plain))}
        nbytes = 4 * n * d * branch.element_size()
        rows.append(dict(op="steer_add_rmsnorm", N=n, D=d, K=k, rel_err=err, **{f"{a}_ms": b for a, b in t.items()},
                         fused_frac_copy=(nbytes / t["fused"] / 1e6) / copy_gbps if copy_gbps else None))
        a = torch.randn(n, d, **kw)
        folded_fn = lambda: steer_linear(a, proj, None, theta, gw, gb, s, True, folded=folded, check_finite=False)
        before = lambda: torch.nn.functional.linear(gated_steer(a, theta, gw, gb, s, True, check_finite=False), proj)
        alone = lambda: torch.nn.functional.linear(a, proj)
        interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
        for gemm in ("triton", "reference") if device == "cuda" or interpreting else ("reference",):
            # the fold's GEMM: Triton with the steer in its epilogue, or torch's (cuBLAS) then the steer
            steerkit.set_backend(gemm, op="two_gemm")
            try:
                err = rel(folded_fn(), before())
                if not err < 2e-2:
                    raise RuntimeError(f"steer_linear ({gemm}) N={n}: rel err {err:.2e} against steering first")
                t = {name: median_ms(fn, device) for name, fn in (("fused", folded_fn), ("unfused", before),
                                                                 ("unsteered", alone))}
            finally:
                steerkit.set_backend(None, op="two_gemm")
            rows.append(dict(op=f"steer_linear[{gemm}]", N=n, D=d, K=k, rel_err=err,
                             **{f"{a}_ms": b for a, b in t.items()}, fused_frac_copy=None))
        print(f"fused N={n}: " + ", ".join(f"{r['op']} {r['fused_ms']*1e3:.1f}/{r['unfused_ms']*1e3:.1f}/"
                                          f"{r['unsteered_ms']*1e3:.1f} us" for r in rows[-3:]), flush=True)
    return rows


# -- the model, the vectors and the hook implementation ---------------------------------------------

def build_model(preset: str, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**PRESETS[preset], attn_implementation="sdpa")
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(prev)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def make_vectors(model, site: str, layers: list[int], k: int, seed: int = 0) -> SteeringVectors:
    layout = steerkit.models.resolve(model)
    d = layout.site_size(site)
    g = torch.Generator().manual_seed(seed)
    entries = {(site, layer): Entry(torch.randn(k, d, generator=g) * 0.02, torch.randn(k, d, generator=g) / d**0.5,
                                    torch.randn(k, generator=g)) for layer in layers}
    return SteeringVectors(entries, attributes=[f"attr{i}" for i in range(k)], norm_preserve=True)


class HookSteer:
    """What a hook-based library does: a forward hook per site running the same math in plain torch."""

    def __init__(self, model, vectors: SteeringVectors, strength: torch.Tensor):
        layout = steerkit.models.resolve(model)
        p = next(model.parameters())
        self.strength = strength.to(p.device, torch.float32)
        self.handles = []
        for site, layer in vectors:
            e = vectors[(site, layer)]
            th, w = e.theta.to(p.device, p.dtype), e.gate_w.to(p.device, p.dtype)
            b = e.gate_b.to(p.device, torch.float32)
            edit = lambda x, th=th, w=w, b=b: self.steer(x, th, w, b, vectors.norm_preserve)
            if site == "block_out":  # a decoder layer returns its stream alone or first in a tuple
                self.handles.append(layout.layers[layer].register_forward_hook(
                    lambda m, a, o, edit=edit: (edit(o[0]),) + tuple(o[1:]) if isinstance(o, tuple) else edit(o)))
                continue
            proj = layout.attn_out_proj(layer)
            if site == "attn_heads":
                self.handles.append(proj.register_forward_pre_hook(lambda m, a, edit=edit: (edit(a[0]),) + a[1:]))
            elif site == "attn_out":
                self.handles.append(proj.register_forward_hook(lambda m, a, o, edit=edit: edit(o)))
            else:
                raise ValueError(f"HookSteer covers block_out, attn_heads and attn_out, not {site}")

    def steer(self, x, th, w, b, norm_preserve):
        xf = x.float()
        c = self.strength * torch.sigmoid(xf @ w.float().t() + b)
        u = xf + c @ th.float()
        if norm_preserve:
            u = u * (xf.norm(dim=-1, keepdim=True) / u.norm(dim=-1, keepdim=True).clamp_min(1e-8))
        return u.to(x.dtype)

    def remove(self):
        for h in self.handles:
            h.remove()


# -- decoding and prefill ------------------------------------------------------------------------------

class Decoder:
    """Greedy decoding with a static KV cache: an eager prefill, then one-token steps, eager or compiled."""

    def __init__(self, model, batch, prompt, new_tokens, mode, compile_backend):
        self.model, self.batch, self.prompt, self.new = model, batch, prompt, new_tokens
        self.device = next(model.parameters()).device
        self.cache = hf.static_cache(model, batch, prompt + new_tokens)
        g = torch.Generator().manual_seed(batch)
        self.ids = torch.randint(3, model.config.vocab_size, (batch, prompt), generator=g).to(self.device)
        self.compiled = mode == "compiled"
        step = self._step
        if self.compiled:
            # dynamo does not guard on hooks added after compiling (skip_nnmodule_hook_guards): a
            # cached graph of another variant would silently run without them
            torch._dynamo.reset()
            cmode = "reduce-overhead" if self.device.type == "cuda" else None
            step = torch.compile(self._step, mode=cmode, backend=compile_backend, fullgraph=True)
        self.step = step

    def _step(self, tok, pos):
        return self.model(input_ids=tok, **hf.step_kwargs(self.model, self.cache, pos), use_cache=True).logits

    def run(self) -> tuple[torch.Tensor, float]:
        """(the first decoded step's logits, seconds for the new tokens after the prefill)."""
        self.cache.reset()
        with torch.no_grad():
            logits = self.model(input_ids=self.ids, use_cache=True,
                                **hf.step_kwargs(self.model, self.cache, torch.arange(self.prompt, device=self.device))
                                ).logits
            tok = logits[:, -1:].argmax(-1)
            first = None
            sync(self.device.type)
            t0 = time.perf_counter()
            for i in range(self.new):
                if self.compiled and self.device.type == "cuda":
                    torch.compiler.cudagraph_mark_step_begin()
                out = self.step(tok, torch.tensor([self.prompt + i], device=self.device))
                if first is None:
                    first = out[:, -1].float().clone()
                tok = out[:, -1:].argmax(-1)
            sync(self.device.type)
        return first, time.perf_counter() - t0


def bench_decode(model, vectors, args, device, deadline, rows=None):
    rows = [] if rows is None else rows  # filled as each mode finishes
    s_a, s_b = torch.tensor([1.0, 0.5, -0.5]), torch.tensor([0.25, -1.0, 2.0])
    for batch in args.batches:
        for mode in args.modes:
            row = dict(batch=batch, mode=mode, prompt=args.prompt, new_tokens=args.new_tokens)
            if time.perf_counter() > deadline:
                row["skipped"] = "over --budget-s"
                rows.append(row)
                continue
            try:
                row.update(_decode_variants(model, vectors, args, device, batch, mode, s_a, s_b))
            except Exception as err:  # recorded, so one failing mode does not end the run
                row["error"] = f"{type(err).__name__}: {err}"[:500]
            rows.append(row)
            print("decode", json.dumps(row), flush=True)
    return rows


def _timed(dec: Decoder, reps: int, on_rep=None):
    first, _ = dec.run()  # warm-up: compilation and CUDA-graph capture happen here
    times = []
    for i in range(reps):
        if on_rep is not None:
            on_rep(i)
        times.append(dec.run()[1])
    return first, statistics.median(times)


def _decode_variants(model, vectors, args, device, batch, mode, s_a, s_b):
    out = {}
    dec = Decoder(model, batch, args.prompt, args.new_tokens, mode, args.compile_backend)
    plain, t = _timed(dec, args.reps)
    out["unsteered_ms_per_token"] = t / args.new_tokens * 1e3
    hooks = HookSteer(model, vectors, s_a)
    try:
        dec = Decoder(model, batch, args.prompt, args.new_tokens, mode, args.compile_backend)
        want, t = _timed(dec, args.reps)
    finally:
        hooks.remove()
    out["hooks_ms_per_token"] = t / args.new_tokens * 1e3
    with steerkit.steer(model, vectors, strength=s_a) as handle:
        out["paths"] = sorted({p for p, _ in handle.paths.values()})
        dec = Decoder(model, batch, args.prompt, args.new_tokens, mode, args.compile_backend)
        got, _ = dec.run()
        out["rel_err_vs_hooks"] = rel(got, want)
        out["steer_changes_logits"] = rel(got, plain)
        if not (out["rel_err_vs_hooks"] < 5e-2 and out["steer_changes_logits"] > out["rel_err_vs_hooks"]):
            raise RuntimeError(f"steerkit's logits do not match the hook implementation: {out}")
        # alternate strengths between timed runs: a compiled model must honour them without re-capture
        _, t = _timed(dec, args.reps, on_rep=lambda i: handle.set_strength(s_b if i % 2 else s_a))
    out["steerkit_ms_per_token"] = t / args.new_tokens * 1e3
    out["steerkit_vs_unsteered"] = out["steerkit_ms_per_token"] / out["unsteered_ms_per_token"]
    out["hooks_vs_unsteered"] = out["hooks_ms_per_token"] / out["unsteered_ms_per_token"]
    return out


def bench_prefill(model, vectors, args, device):
    ids = torch.randint(3, model.config.vocab_size, (1, args.prefill_tokens), device=device)
    fwd = lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1).logits
    with torch.no_grad():
        row = dict(tokens=args.prefill_tokens)
        row["unsteered_ms"] = median_ms(fwd, device, reps=5)
        hooks = HookSteer(model, vectors, torch.tensor([1.0, 0.5, -0.5]))
        try:
            want = fwd()
            row["hooks_ms"] = median_ms(fwd, device, reps=5)
        finally:
            hooks.remove()
        with steerkit.steer(model, vectors, strength=torch.tensor([1.0, 0.5, -0.5])):
            row["rel_err_vs_hooks"] = rel(fwd(), want)
            row["steerkit_ms"] = median_ms(fwd, device, reps=5)
    for v in ("unsteered", "hooks", "steerkit"):
        row[f"{v}_tokens_per_s"] = args.prefill_tokens / row[f"{v}_ms"] * 1e3
    print("prefill", json.dumps(row), flush=True)
    return row


# -- report ---------------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    env = res["environment"]
    lines = [f"# steerkit GPU benchmark on {env.get('device', '?')}", "",
             ", ".join(f"{k} {v}" for k, v in env.items() if k != "device"), ""]
    if res.get("cut_short"):
        lines += [f"**Cut short:** {res['cut_short']}; the tables hold what was measured before.", ""]
    c = res.get("ceilings")
    if c:
        lines += [f"Measured ceilings: copy {c['copy_GBps']:.0f} GB/s, bf16 matmul {c['bf16_matmul_TFLOPs']:.0f} "
                  "TFLOP/s.", ""]
    if res.get("gated_steer_md"):
        lines += [res["gated_steer_md"], ""]
    if res.get("fused"):
        lines += ["## Fused ops (bf16 on GPU; µs)", "",
                  "| op | N | D | K | fused | unfused | unsteered | fused / unsteered | % copy |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["fused"]:
            frac = f"{r['fused_frac_copy']:.0%}" if r.get("fused_frac_copy") else "—"
            lines.append(f"| {r['op']} | {r['N']} | {r['D']} | {r['K']} | {r['fused_ms']*1e3:.1f} | "
                         f"{r['unfused_ms']*1e3:.1f} | {r['unsteered_ms']*1e3:.1f} | "
                         f"{r['fused_ms']/r['unsteered_ms']:.2f}x | {frac} |")
        lines.append("")
    if res.get("decode"):
        lines += [f"## Decoding ({res['config']['preset']}, prompt {res['config']['prompt']}, "
                  f"{res['config']['new_tokens']} new tokens; ms per new token)", "",
                  "| batch | mode | unsteered | steerkit | steerkit / unsteered | hooks | hooks / unsteered | paths |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["decode"]:
            if "unsteered_ms_per_token" not in r or "steerkit_ms_per_token" not in r:
                lines.append(f"| {r['batch']} | {r['mode']} | {r.get('error') or r.get('skipped')} |||||| ")
                continue
            lines.append(f"| {r['batch']} | {r['mode']} | {r['unsteered_ms_per_token']:.2f} | "
                         f"{r['steerkit_ms_per_token']:.2f} | {r['steerkit_vs_unsteered']:.3f}x | "
                         f"{r['hooks_ms_per_token']:.2f} | {r['hooks_vs_unsteered']:.3f}x | {', '.join(r['paths'])} |")
        lines.append("")
    p = res.get("prefill")
    if p:
        lines += [f"## Prefill ({p['tokens']} tokens, batch 1)", "", "| variant | ms | tokens/s |", "|---|---|---|"]
        for v in ("unsteered", "steerkit", "hooks"):
            lines.append(f"| {v} | {p[f'{v}_ms']:.1f} | {p[f'{v}_tokens_per_s']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG", flush=True)
        return
    rows = [r for r in res.get("decode", []) if "steerkit_ms_per_token" in r]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"b{r['batch']} {r['mode']}" for r in rows]
    x = range(len(rows))
    for i, (v, name) in enumerate((("unsteered", "unsteered"), ("steerkit", "steerkit"), ("hooks", "forward hooks"))):
        ax.bar([j + (i - 1) * 0.27 for j in x], [r[f"{v}_ms_per_token"] for r in rows], width=0.27, label=name)
    ax.set_xticks(list(x), labels, rotation=30)
    ax.set_ylabel("ms per new token")
    ax.set_title(f"steered decoding, {res['config']['preset']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _measure(args, res: dict, device: str, dtype, start: float) -> None:
    """Every section asked for, into ``res`` as each finishes (a deadline keeps what was measured)."""
    copy_gbps = None
    if device == "cuda" and "ceilings" in args.sections:
        from gpu_gated_steer import ceilings

        res["ceilings"] = ceilings()
        copy_gbps = res["ceilings"]["copy_GBps"]
        print("ceilings", res["ceilings"], flush=True)
    if device == "cuda" and "gated_steer" in args.sections:
        import gpu_gated_steer as g

        gs = g.run(argparse.Namespace(n=[1, 8, 64, 4096, 32768], d=[4096, 8192], k=[1, 4, 16],
                                      backends=g.BACKENDS))
        gs["environment"] = res["environment"]
        res["gated_steer"] = gs["rows"]
        res["gated_steer_md"] = g.markdown(gs)
    if "fused" in args.sections:
        d = PRESETS[args.preset]["hidden_size"]
        bench_fused(device, dtype, args.fused_n, d, 3, d, copy_gbps, rows=res.setdefault("fused", []))
    if {"decode", "prefill"} & set(args.sections):
        model = build_model(args.preset, device, dtype)
        n = model.config.num_hidden_layers
        layers = args.layers or [max(0, n // 2 - 2 + i) for i in range(min(4, n))]
        vectors = make_vectors(model, args.site, layers, 3)
        res["config"]["steered_layers"] = layers
        deadline = start + args.budget_s
        if "decode" in args.sections:
            bench_decode(model, vectors, args, device, deadline, rows=res.setdefault("decode", []))
        if "prefill" in args.sections:
            if time.perf_counter() < deadline:
                try:
                    res["prefill"] = bench_prefill(model, vectors, args, device)
                except Exception as err:  # recorded, like a failing decode mode
                    res["prefill_error"] = f"{type(err).__name__}: {err}"[:500]
            else:
                res["prefill_skipped"] = "over --budget-s"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--preset", choices=sorted(PRESETS), default="llama3-8b")
    p.add_argument("--sections", nargs="+", default=["ceilings", "gated_steer", "fused", "decode", "prefill"],
                   choices=["ceilings", "gated_steer", "fused", "decode", "prefill"])
    p.add_argument("--site", choices=["attn_out", "attn_heads"], default="attn_out",
                   help="where the 3 attributes steer (attn_out: fused residual+RMSNorm; attn_heads: folded)")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="default: 4 layers around the middle")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    p.add_argument("--modes", nargs="+", choices=["eager", "compiled"], default=["eager", "compiled"])
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (the tests use 'eager')")
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--prefill-tokens", type=int, default=4096)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--fused-n", type=int, nargs="+", default=[1, 64, 4096, 32768])
    p.add_argument("--budget-s", type=float, default=540.0)
    args = p.parse_args(argv)
    start = time.perf_counter()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benches/gpu.py: no CUDA GPU visible (use --device cpu --preset tiny for a smoke run)")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    from gpu_gated_steer import environment

    res = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    res["environment"] = environment() if device == "cuda" else {
        "device": "cpu", "torch": torch.__version__, "steerkit": steerkit.__version__}
    args.out.mkdir(parents=True, exist_ok=True)
    # a deadline (timeout's SIGTERM) ends the measuring, not the write: what was measured is kept
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        _measure(args, res, device, dtype, start)
    except SystemExit:
        res["cut_short"] = "stopped by its deadline (SIGTERM)"
        raise
    finally:
        res["seconds"] = time.perf_counter() - start
        (args.out / "gpu.json").write_text(json.dumps(res, indent=1, default=str))
        (args.out / "gpu.md").write_text(markdown(res))
        plot(res, args.out / "gpu.png")
        print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
