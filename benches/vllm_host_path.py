"""The vLLM plugin's per-step host path, alone: what the model runner hook does before every forward
(read the batch layout, write the per-token strength rows), timed at decode steps of 64 and 256
requests, half of them steered. No engine: the runner's batch is a stand-in with the fields the hook
reads (``hooks.RUNNER_FIELDS``), so the loop is timed without vLLM's own per-step work around it.

    python benches/vllm_host_path.py [--out benches/results/cpu/vllm_host_path.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from steerkit.vectors import Entry, SteeringVectors
from steerkit.vllm import hooks
from steerkit.vllm.bank import SteeringBank


def runner(n: int, steered: int, bank: SteeringBank, prompt: int = 32):
    """A model runner holding ``n`` decoding requests, the first ``steered`` of them steered."""
    req_ids = [f"r{i}" for i in range(n)]
    requests = {}
    for i, r in enumerate(req_ids):
        extra = {"steerkit_vectors": "v", "steerkit_strength": [1.0, 0.5]} if i < steered else None
        requests[r] = SimpleNamespace(sampling_params=SimpleNamespace(extra_args=extra), num_prompt_tokens=prompt)
    batch = SimpleNamespace(req_ids=req_ids, num_reqs=n, num_computed_tokens_cpu=np.full(n + 8, prompt, dtype=np.int32))
    return SimpleNamespace(input_batch=batch, requests=requests, _steerkit_bank=bank)


def step_us(run, n: int, steps: int) -> float:
    scheduled = np.ones(n, dtype=np.int32)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        hooks.before_forward(run, scheduled)
        times.append(time.perf_counter() - t)
        run.input_batch.num_computed_tokens_cpu[:n] += 1  # the next decode step
    return 1e6 * statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    vecs = SteeringVectors({("block_out", layer): Entry(torch.randn(2, 576, generator=g), torch.randn(2, 576, generator=g),
                                                        torch.zeros(2)) for layer in (6, 12, 18, 24)})
    rows = []
    for n in args.requests:
        bank = SteeringBank({"v": vecs}, max_tokens=max(args.requests) * 2, max_requests=max(args.requests),
                            dtype=torch.float32, device=torch.device("cpu"))
        for steered in (0, n // 2, n):
            us = step_us(runner(n, steered, bank), n, args.steps)
            rows.append({"requests": n, "steered": steered, "us_per_step": us})
            print(f"{n} requests, {steered} steered: {us:.0f} us per decode step", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
