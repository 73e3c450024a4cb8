"""GPU benchmark of gated_steer: every backend, forward and forward+backward, with the device's
measured ceilings, written as JSON and a markdown table into a folder.

    python benches/gpu_gated_steer.py --out benches/results/<device>
    python benches/gpu_gated_steer.py --device cpu --n 1 64 --d 256 --k 1 16 --out /tmp/x   # smoke run

Bytes counted (the fewest any implementation must move): forward reads h and writes out
(2·N·D·bytes); backward reads grad and h and writes dh (3·N·D·bytes); theta/gate_w/gates are K-sized
and ignored. Achieved bandwidth is those bytes over the median time, as a fraction of the
measured device-to-device copy bandwidth. Inputs are random (never zeros), outputs are checked
against the float64 reference before anything is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import triton

import steerkit
from steerkit import reference
from steerkit.backends.triton import interpreting

BACKENDS = ["reference", "triton", "cuda"]
CPU_BACKENDS = ["reference", "cpu", "triton"]  # triton only under TRITON_INTERPRET=1 (the smoke run)
DEVICE = "cuda"


def median_ms(fn) -> float:
    """Median ms: triton's do_bench (L2 flushed) on CUDA; a short timed loop on the CPU (smoke runs)."""
    if DEVICE == "cuda":
        import triton.testing

        return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
    fn()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def graph_ms(fn) -> float | None:
    """Median ms of ``fn`` replayed from a CUDA graph: the kernels' time without the host's per-call
    cost (the op layer's Python, ~0.1 ms a call, is most of the time at N·D = 4096² and below)."""
    if DEVICE != "cuda":
        return None
    import triton.testing

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()  # warm up (Triton compiles) outside the capture
    torch.cuda.current_stream().wait_stream(stream)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return triton.testing.do_bench(g.replay, warmup=25, rep=100, return_mode="median")


def dtype() -> torch.dtype:
    return torch.bfloat16 if DEVICE == "cuda" else torch.float32


def ceilings() -> dict:
    big = DEVICE == "cuda"
    n = 1 << 29 if big else 1 << 24  # 1 GiB of bf16 on a GPU: far beyond L2
    x = torch.randn(n, device=DEVICE, dtype=dtype())
    y = torch.empty_like(x)
    t = median_ms(lambda: y.copy_(x))
    copy_gbs = 2 * x.numel() * x.element_size() / t / 1e6
    del x, y
    m = 8192 if big else 512
    a = torch.randn(m, m, device=DEVICE, dtype=dtype())
    b = torch.randn(m, m, device=DEVICE, dtype=dtype())
    t = median_ms(lambda: a @ b)
    return {"copy_GBps": copy_gbs, "bf16_matmul_TFLOPs" if big else "fp32_matmul_TFLOPs": 2 * m**3 / t / 1e9}


def case_inputs(n, d, k, dtype, seed):
    g = torch.Generator(device=DEVICE).manual_seed(seed)
    kw = dict(device=DEVICE, dtype=dtype, generator=g)
    h = torch.randn(n, d, **kw)
    theta = torch.randn(k, d, **kw) * 0.5
    w = torch.randn(k, d, **kw) / d**0.5
    b = torch.randn(k, device=DEVICE, generator=g)
    s = torch.rand(n, k, device=DEVICE, generator=g)
    grad = torch.randn(n, d, **kw)
    return h, theta, w, b, s, grad


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def run(args, res: dict | None = None) -> dict:
    """The grid; rows are appended to ``res["rows"]`` as they are measured, so a run cut short by its
    deadline still writes what it has."""
    dt = dtype()
    ceil = ceilings()
    print("ceilings: " + ", ".join(f"{k} {v:.0f}" for k, v in ceil.items()), flush=True)
    res = {} if res is None else res
    res.update(ceilings=ceil, rows=[])
    rows = res["rows"]
    for n in args.n:
        for d in args.d:
            for k in args.k:
                h, theta, w, b, s, grad = case_inputs(n, d, k, dt, seed=n * 7 + d + k)
                ref_out, _ = reference.gated_steer(h.double(), theta.double(), w.double(), b.double(), s.double(),
                                                   True)
                nbytes = n * d * h.element_size()
                for be in args.backends:
                    steerkit.set_backend(be)
                    out = steerkit.gated_steer(h, theta, w, b, s, norm_preserve=True, check_finite=False)
                    err = rel(out, ref_out)
                    if not err < 1e-2:
                        raise SystemExit(f"{be} N={n} D={d} K={k}: rel err {err:.3e} vs reference")
                    fwd = median_ms(lambda: steerkit.gated_steer(h, theta, w, b, s, norm_preserve=True,
                                                                 check_finite=False))
                    graph = graph_ms(lambda: steerkit.gated_steer(h, theta, w, b, s, norm_preserve=True,
                                                                  check_finite=False))
                    hr, tr, wr, sr = (t.detach().requires_grad_() for t in (h, theta, w, s))
                    o = steerkit.gated_steer(hr, tr, wr, b, sr, norm_preserve=True, check_finite=False)
                    bwd = median_ms(lambda: torch.autograd.grad(o, (hr, tr, wr, sr), grad, retain_graph=True))
                    rows.append({
                        "backend": be, "N": n, "D": d, "K": k, "rel_err": err,
                        "fwd_ms": fwd, "bwd_ms": bwd, "fwd_graph_ms": graph,
                        "fwd_GBps": 2 * nbytes / fwd / 1e6, "bwd_GBps": 3 * nbytes / bwd / 1e6,
                    })
                    r = rows[-1]
                    print(f"{be:>9} N={n:>6} D={d} K={k:>2}  fwd {fwd*1e3:9.1f} us ({r['fwd_GBps']/ceil['copy_GBps']:6.1%})"
                          f"  bwd {bwd*1e3:9.1f} us ({r['bwd_GBps']/ceil['copy_GBps']:6.1%})  err {err:.1e}", flush=True)
                steerkit.set_backend(None)
    return res


def environment() -> dict:
    import transformers  # noqa: F401  (versions only)

    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    return {
        "device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu",
        "driver": cmd("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"),
        "torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton.__version__,
        "transformers": __import__("transformers").__version__, "python": platform.python_version(),
        "steerkit": steerkit.__version__,
        "commit": os.environ.get("STEERKIT_COMMIT") or cmd("git", "rev-parse", "HEAD"),
    }


def markdown(res: dict) -> str:
    c = res["ceilings"]
    env = res["environment"]
    lines = [
        f"# gated_steer on {env['device']}",
        "",
        f"driver {env['driver']}, torch {env['torch']} (CUDA {env['cuda']}), triton {env['triton']}, "
        f"transformers {env['transformers']}, commit {env['commit'][:12]}",
        "",
        "Measured ceilings: " + ", ".join(f"{k} {v:.0f}" for k, v in c.items()) + " (copy: read+write).",
        f"{'bf16' if env['device'] != 'cpu' else 'float32'}, gated, norm-preserving, per-row strengths. '% copy' = minimal bytes (fwd 2·N·D·2, bwd 3·N·D·2) "
        "over time, against the copy ceiling. 'vs ref' = reference time / backend time.",
        "",
        *([f"**Cut short:** {res['cut_short']}.", ""] if res.get("cut_short") else []),
        "'graph' = the forward replayed from a CUDA graph: the kernels alone, without the per-call host cost.",
        "",
        "| backend | N | D | K | fwd µs | fwd % copy | fwd vs ref | graph µs | graph % copy | bwd µs | bwd % copy "
        "| bwd vs ref |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ref = {(r["N"], r["D"], r["K"]): r for r in res["rows"] if r["backend"] == "reference"}
    for r in res["rows"]:
        base = ref[(r["N"], r["D"], r["K"])]
        g = r.get("fwd_graph_ms")
        graph = (f"{g*1e3:.1f} | {2 * r['N'] * r['D'] * 2 / g / 1e6 / c['copy_GBps']:.0%}" if g else "— | —")
        lines.append(
            f"| {r['backend']} | {r['N']} | {r['D']} | {r['K']} | {r['fwd_ms']*1e3:.1f} | "
            f"{r['fwd_GBps']/c['copy_GBps']:.0%} | {base['fwd_ms']/r['fwd_ms']:.2f}x | {graph} | "
            f"{r['bwd_ms']*1e3:.1f} | "
            f"{r['bwd_GBps']/c['copy_GBps']:.0%} | {base['bwd_ms']/r['bwd_ms']:.2f}x |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, nargs="+", default=[1, 8, 64, 4096, 32768])
    p.add_argument("--d", type=int, nargs="+", default=[4096, 8192])
    p.add_argument("--k", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--backends", nargs="+", default=None, choices=sorted(set(BACKENDS + CPU_BACKENDS)))
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a smoke run of the script")
    args = p.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("benches/gpu_gated_steer.py: no CUDA GPU visible (--device cpu for a smoke run)")
    if args.backends is None:
        args.backends = BACKENDS if DEVICE == "cuda" else [
            b for b in CPU_BACKENDS if b != "triton" or interpreting()]
    args.out.mkdir(parents=True, exist_ok=True)
    res = {"environment": environment()}
    # a deadline (timeout's SIGTERM) ends the grid, not the write: what was measured is kept
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    try:
        run(args, res)
    except SystemExit:
        res["cut_short"] = "stopped by its deadline (SIGTERM) after the rows below"
        raise
    finally:
        if res.get("rows"):
            (args.out / "gated_steer.json").write_text(json.dumps(res, indent=1))
            (args.out / "gated_steer.md").write_text(markdown(res))
            print(markdown(res))


if __name__ == "__main__":
    main()
