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
    """A model runner holding ``n`` decoding requests, the first ``steered`` of them steered, spread over
    the bank's sets in turn."""
    req_ids = [f"r{i}" for i in range(n)]
    requests = {}
    names = bank.names
    for i, r in enumerate(req_ids):
        name = names[i % len(names)]
        extra = {"steerkit_vectors": name, "steerkit_strength": [1.0] * len(bank.attributes[name])} \
            if i < steered else None
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


def new_batch_us(run, n: int, steps: int) -> float:
    """The step on which the batch's requests change (every request's strengths are written again)."""
    scheduled = np.ones(n, dtype=np.int32)
    times = []
    for _ in range(steps):
        run.__dict__.pop("_steerkit_ids", None)
        t = time.perf_counter()
        hooks.before_forward(run, scheduled)
        times.append(time.perf_counter() - t)
    return 1e6 * statistics.median(times)


def bank_bytes(bank: SteeringBank) -> int:
    """What the bank holds on the device: every buffer (vectors per place, strength table, token rows)."""
    return sum(b.numel() * b.element_size() for b in bank.buffers())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--sets", type=int, nargs="+", default=[1, 64],
                    help="resident sets in the bank (the requests spread over them)")
    ap.add_argument("--k", type=int, default=4, help="attributes per set beyond the first case (today's: 1 set, K=2)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    g = torch.Generator().manual_seed(0)

    def vecs(k):
        return SteeringVectors({("block_out", layer): Entry(torch.randn(k, 576, generator=g),
                                                            torch.randn(k, 576, generator=g), torch.zeros(k))
                                for layer in (6, 12, 18, 24)})
    rows = []
    for sets in args.sets:
        k = 2 if sets == 1 else args.k
        resident = {f"v{i}": vecs(k) for i in range(sets)}
        for n in args.requests:
            bank = SteeringBank(resident, max_tokens=max(args.requests) * 2, max_requests=max(args.requests),
                                dtype=torch.float32, device=torch.device("cpu"))
            for steered in (0, n // 2, n):
                us = step_us(runner(n, steered, bank), n, args.steps)
                change = new_batch_us(runner(n, steered, bank), n, max(10, args.steps // 10))
                rows.append({"sets": sets, "k": k, "columns": bank.width, "requests": n, "steered": steered,
                             "us_per_step": us, "us_new_batch": change, "bank_bytes": bank_bytes(bank)})
                print(f"{sets} set(s) of K={k}, {n} requests, {steered} steered: {us:.0f} us per decode step, "
                      f"{change:.0f} us when the batch changes; bank {bank_bytes(bank) / 2**20:.2f} MiB", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
