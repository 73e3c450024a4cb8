"""The resident steering sets of one vLLM worker, stacked so that one ``gated_steer`` launch per steered
(site, layer) serves the whole flattened batch.

Set i owns columns ``[offset_i, offset_i + K_i)`` of a strength table. Each (site, layer) stacks every
set's theta there (zero rows for a set without that key, so it adds nothing), its gate weights (a set
without gates gets w = 0 and a bias of 1e4, a gate of exactly 1), and its norm-preserve flag (sets that
differ in it take one launch per flag). When the batch's requests change the runner hook writes each
steered request's strengths to its row of the table (row 0 is all zeros: not steered); before each
forward it writes, per token, which row steers it, from each request's scheduled positions in numpy
(no per-request Python on the steady decode path). Both
live in persistent buffers updated in place, so a compiled graph or a captured CUDA graph reads the new
requests without re-capture; a token of an unsteered request gets strength 0 and comes out bit-identical.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..ops import gated_steer
from ..vectors import SteeringVectors
from .requests import MAX_COLUMNS

_NO_END = 2 ** 62  # an open-ended policy's end position
GATE_ALWAYS_ON = 1e4  # sigmoid(1e4) == 1.0 exactly: an ungated set's gate inside a gated launch


class _Launch(nn.Module):
    """The stacked tensors of one gated_steer launch at one (site, layer)."""

    def __init__(self, theta, gate_w, gate_b, norm_preserve: bool):
        super().__init__()
        self.register_buffer("theta", theta, persistent=False)
        self.register_buffer("gate_w", gate_w, persistent=False)
        self.register_buffer("gate_b", gate_b, persistent=False)
        self.norm_preserve = norm_preserve


class SteeringBank(nn.Module):
    """Steering sets ``{name: SteeringVectors}`` stacked for one model of ``dtype`` on ``device``."""

    def __init__(self, sets: dict, max_tokens: int, max_requests: int, dtype: torch.dtype,
                 device: torch.device):
        super().__init__()
        if not sets:
            raise ValueError("SteeringBank needs at least one steering set")
        self.names = list(sets)
        self.offsets, width = {}, 0
        for name, vecs in sets.items():
            if not isinstance(vecs, SteeringVectors):
                raise ValueError(f"steering set {name!r}: expected SteeringVectors, got {type(vecs).__name__}")
            self.offsets[name] = width
            width += len(vecs.attributes)
        if width > MAX_COLUMNS:
            raise ValueError(f"the steering sets have {width} attributes together; at most {MAX_COLUMNS} are "
                             "resident at once (load fewer sets)")
        self.sizes = {name: len(v.attributes) for name, v in sets.items()}
        self.attributes = {name: tuple(v.attributes) for name, v in sets.items()}
        self.width = width
        keys = sorted({key for v in sets.values() for key in v}, key=lambda k: (k[0], k[1]))
        self.launches = nn.ModuleDict()
        for site, layer in keys:
            self.launches[f"{site}:{layer}"] = nn.ModuleList(
                self._stack(sets, (site, layer), flag, dtype, device)
                for flag in (False, True) if any(v.norm_preserve == flag and (site, layer) in v for v in sets.values()))
        # per token: the table row that steers it (0: none); per request slot + 1: its strengths
        self.register_buffer("token_rows", torch.zeros(max_tokens, dtype=torch.long, device=device), persistent=False)
        self.register_buffer("table", torch.zeros(max_requests + 1, width, dtype=torch.float32, device=device),
                             persistent=False)
        self._host_table = torch.zeros(max_requests + 1, width, dtype=torch.float32)
        self._filled = 0
        self.set_requests([])

    def _stack(self, sets, key, norm_preserve, dtype, device) -> _Launch:
        d = next(v[key].hidden_size for v in sets.values() if key in v)
        theta = torch.zeros(self.width, d, dtype=torch.float64)
        gate_w = torch.zeros(self.width, d, dtype=torch.float64)
        gate_b = torch.full((self.width,), GATE_ALWAYS_ON, dtype=torch.float64)
        gated = False
        for name, vecs in sets.items():
            if key not in vecs or vecs.norm_preserve != norm_preserve:
                continue
            e, cols = vecs[key], slice(self.offsets[name], self.offsets[name] + self.sizes[name])
            theta[cols] = e.theta.double()
            if e.gate_w is not None:
                gated = True
                gate_w[cols] = e.gate_w.double()
                gate_b[cols] = e.gate_b.double() if e.gate_b is not None else 0.0
        cast = dict(dtype=dtype, device=device)
        if not gated:
            return _Launch(theta.to(**cast), None, None, norm_preserve)
        return _Launch(theta.to(**cast), gate_w.to(**cast), gate_b.to(**cast), norm_preserve)

    # -- what the model side asks -----------------------------------------------------------------
    def keys(self) -> list:
        return [(key.partition(":")[0], int(key.partition(":")[2])) for key in self.launches]

    def apply(self, key: tuple, x: torch.Tensor) -> torch.Tensor:
        """``x`` [num_tokens, D] (the flattened batch, padded or not) steered at ``key``."""
        strength = self.table[self.token_rows[: x.shape[0]]]
        for launch in self.launches[f"{key[0]}:{key[1]}"]:
            x = gated_steer(x, launch.theta, launch.gate_w, launch.gate_b, strength,
                            norm_preserve=launch.norm_preserve, check_finite=False)
        return x

    # -- what the runner side writes before each forward ---------------------------------------------
    def set_requests(self, requests: list) -> None:
        """The batch's requests, in batch order, when they change: each ``(steering, prompt length)``, or
        None for an unsteered one. Writes their strengths to the table and keeps each one's steered range
        of positions for ``set_positions``."""
        n = len(requests)
        if n + 1 > self.table.shape[0]:
            raise RuntimeError(f"steerkit: a batch of {n} requests exceeds the {self.table.shape[0] - 1} sized at start")
        self._slot = np.zeros(n, dtype=np.int64)
        self._first = np.zeros(n, dtype=np.int64)
        self._end = np.zeros(n, dtype=np.int64)
        for i, r in enumerate(requests):
            if r is None:
                continue
            steering, prompt_len = r
            start = self.offsets[steering.name]
            self._host_table[i + 1].zero_()
            self._host_table[i + 1, start:start + len(steering.strength)] = torch.tensor(steering.strength)
            first, end = steering.steered_positions(prompt_len)
            self._slot[i], self._first[i], self._end[i] = i + 1, first, min(end, _NO_END)
        self.table[: n + 1].copy_(self._host_table[: n + 1], non_blocking=True)

    def set_positions(self, start, count) -> None:
        """Before each forward: per request of ``set_requests``, its first scheduled position and how many
        tokens it has in this batch (arrays). The batch's tokens are those requests' tokens in that order."""
        start = np.asarray(start, dtype=np.int64)
        count = np.asarray(count, dtype=np.int64)
        total = int(count.sum())
        if total > self.token_rows.shape[0]:
            raise RuntimeError(f"steerkit: a batch of {total} tokens exceeds the {self.token_rows.shape[0]} sized "
                               "at start")
        # per token: its request, and its absolute position; steered where the position is in the range
        req = np.repeat(np.arange(len(count)), count)
        pos = start[req] + np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        rows = np.where((pos >= self._first[req]) & (pos < self._end[req]), self._slot[req], 0)
        if self._filled > total:  # rows past this batch's tokens (padding for a captured size): never steered
            rows = np.concatenate([rows, np.zeros(self._filled - total, dtype=np.int64)])
        self.token_rows[: rows.shape[0]].copy_(torch.from_numpy(rows), non_blocking=True)
        self._filled = total
