"""Streaming collection and training from shards on the CPU: throughput, and peak memory against the
data set's size. Every measurement is a fresh process (peak RSS is per process), all in one run:

    python benches/collect.py --out benches/results/cpu/collect.json

- collect to shards (`steerkit collect`), 1 process and 2 under torchrun, at 1x and 8x the texts;
- collect in memory (`mat.collect_activations`) at 1x and 8x, for contrast;
- train MAT-Steer from the shards and from the same rows in memory, at 1x and 8x (a fixed number of
  steps, so the time is comparable and the memory is what differs).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "the food was great and lovely the service was poor and slow the staff was kind".split()


def _data(path: Path, n: int) -> None:
    import random
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(30))
            f.write(json.dumps({"text": text, "attribute": ["tone", "pace"][i % 2],
                                "label": ["positive", "negative"][(i // 2) % 2]}) + "\n")


def _model(path: Path) -> None:
    from steerkit.demos.toy.model import build_tokenizer, random_llama
    tok = build_tokenizer()
    random_llama(tok, 128, 256, layers=4, heads=4, kv_heads=2).save_pretrained(str(path))
    tok.save_pretrained(str(path))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def worker(args) -> None:
    """One measurement in this process; prints one JSON line."""
    from steerkit import mat
    from steerkit.hf import load_model
    from steerkit.mat.shards import ActivationShards

    t = time.perf_counter()
    if args.worker == "collect-mem":
        model, tok = load_model(args.model)
        acts = mat.collect_activations(model, tok, args.data, site="block_out", layer=2, progress=False)
        rows = sum(len(acts.pos[a]) + len(acts.neg[a]) for a in acts.attributes)
    else:
        cfg = mat.MATConfig(epochs=1, steps_per_epoch=200)
        source = ActivationShards(args.folder)
        if args.worker == "train-mem":
            source = source.to_activations()
        mat.train(source, cfg, progress=False)
        rows = len(ActivationShards(args.folder))
    print(json.dumps({"seconds": time.perf_counter() - t, "rows": rows, "peak_mib": _peak_mib()}))


def _run(cmd, env=None) -> tuple:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return proc, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-texts", type=int, default=2500,
                    help="texts at 1x (31 tokens each; 2500 puts each group past the warm start's 16384-row sample)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--shard-tokens", type=int, default=16384)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="steerkit-collect-bench-"))
    _model(root / "model")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    rows = []
    for size in args.sizes:
        data = root / f"data{size}.jsonl"
        _data(data, args.base_texts * size)
        for procs in (1, 2):
            out = root / f"acts{size}-{procs}"
            cmd = ["-m", "steerkit", "collect", "--model", str(root / "model"), "--data", str(data), "--site",
                   "block_out", "--layer", "2", "--out", str(out), "--shard-tokens", str(args.shard_tokens), "--quiet"]
            # peak RSS of each rank, read by a wrapper in the same process
            wrapped = ["-c", "import runpy,sys,resource,json; sys.argv=['steerkit']+sys.argv[1:];\n"
                       "try:\n runpy.run_module('steerkit', run_name='__main__')\n"
                       "except SystemExit: pass\n"
                       "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"] + cmd[2:]
            launch = [sys.executable] if procs == 1 else [torchrun, "--standalone", "--nproc_per_node", "2",
                                                          "--no-python", sys.executable]
            env = dict(os.environ, OMP_NUM_THREADS=str(2 // procs))
            proc, seconds = _run(launch + wrapped, env)
            peaks = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK")]
            n = _rows(out)
            rows.append({"what": f"collect to shards, {procs} process{'es' if procs > 1 else ''}", "size": size,
                         "rows": n, "seconds": seconds, "tokens_per_s": n / seconds, "peak_mib": max(peaks)})
        proc, _ = _run([sys.executable, __file__, "--worker", "collect-mem", "--model", str(root / "model"),
                        "--data", str(data)])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"what": "collect in memory", "size": size, "rows": r["rows"], "seconds": r["seconds"],
                     "tokens_per_s": r["rows"] / r["seconds"], "peak_mib": r["peak_mib"]})
        for w, label in (("train-shards", "train from shards"), ("train-mem", "train in memory")):
            proc, _ = _run([sys.executable, __file__, "--worker", w, "--folder", str(root / f"acts{size}-1")])
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"what": label + " (200 steps)", "size": size, "rows": r["rows"], "seconds": r["seconds"],
                         "tokens_per_s": None, "peak_mib": r["peak_mib"]})
    print("| what | data | rows (tokens) | seconds | tokens/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        tps = f"{r['tokens_per_s']:.0f}" if r["tokens_per_s"] else ""
        print(f"| {r['what']} | {r['size']}x | {r['rows']} | {r['seconds']:.1f} | {tps} | {r['peak_mib']:.0f} |")
    if args.out is not None:
        import torch
        args.out.write_text(json.dumps({"torch": torch.__version__, "cpu_count": os.cpu_count(), "rows": rows},
                                       indent=1))
    shutil.rmtree(root, ignore_errors=True)


def _rows(folder: Path) -> int:
    return sum(s["rows"] for s in json.loads((folder / "index.json").read_text())["shards"])


if __name__ == "__main__":
    main()
