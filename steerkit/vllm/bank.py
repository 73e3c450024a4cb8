"""The resident steering sets of one vLLM worker, stacked so that one ``gated_steer`` launch per steered
(site, layer) serves the whole flattened batch.

Set i owns K_i columns of a strength table (any free ones: a set loaded while serving takes the columns
an unloaded one gave back). Each (site, layer) stacks every
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

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..ops import gated_steer
from ..vectors import SteeringVectors
from .requests import MAX_COLUMNS

_NO_END = 2 ** 62  # an open-ended policy's end position
GATE_ALWAYS_ON = 1e4  # sigmoid(1e4) == 1.0 exactly: an ungated set's gate inside a gated launch


@dataclass(frozen=True)
class Layout:
    """What a bank has room for, fixed when it is built: a compiled graph or a captured CUDA graph reads
    its buffers in place, so the launches and their widths cannot change while the engine serves, only
    the rows inside them. ``launches``: per launch ``((site, layer), D, norm_preserve, gated)``;
    ``columns``: the strength columns every launch holds, shared by the resident sets."""

    columns: int
    launches: tuple

    @classmethod
    def fitting(cls, sets: dict) -> "Layout":
        """Room for exactly these sets: one launch per (site, layer) and norm-preserve flag they use, gated
        only where one of them has gates (the bank of an engine that loads nothing while it serves)."""
        launches = []
        for key in sorted({key for v in sets.values() for key in v}):
            for flag in (False, True):
                users = [v for v in sets.values() if key in v and v.norm_preserve == flag]
                if users:
                    launches.append((key, users[0][key].hidden_size, flag,
                                     any(v[key].gate_w is not None for v in users)))
        return cls(sum(len(v.attributes) for v in sets.values()), tuple(launches))

    @classmethod
    def with_room(cls, columns: int, widths: dict, flags: tuple = (False,)) -> "Layout":
        """Room for sets loaded while serving: ``columns`` columns at every (site, layer) of ``widths``
        ({key: D}), gated, one launch per norm-preserve flag in ``flags``."""
        return cls(columns, tuple((key, d, flag, True) for key, d in sorted(widths.items()) for flag in flags))

    def keys(self) -> list:
        return list(dict.fromkeys(key for key, _, _, _ in self.launches))


class _Launch(nn.Module):
    """The stacked tensors of one gated_steer launch at one (site, layer)."""

    def __init__(self, theta, gate_w, gate_b, norm_preserve: bool):
        super().__init__()
        self.register_buffer("theta", theta, persistent=False)
        self.register_buffer("gate_w", gate_w, persistent=False)
        self.register_buffer("gate_b", gate_b, persistent=False)
        self.norm_preserve = norm_preserve

    def clear(self, cols: torch.Tensor) -> None:
        """Columns that steer nothing: theta 0, and a gate of exactly 1 (w = 0, bias GATE_ALWAYS_ON)."""
        self.theta[cols] = 0
        if self.gate_w is not None:
            self.gate_w[cols] = 0
            self.gate_b[cols] = GATE_ALWAYS_ON


class SteeringBank(nn.Module):
    """Steering sets ``{name: SteeringVectors}`` stacked for one model of ``dtype`` on ``device``, in
    ``layout`` (default: room for exactly these sets). A bank with room to spare takes more sets while it
    serves (``place``) and gives their columns back (``free``)."""

    def __init__(self, sets: dict, max_tokens: int, max_requests: int, dtype: torch.dtype,
                 device: torch.device, layout: Layout | None = None):
        super().__init__()
        if not sets and layout is None:
            raise ValueError("SteeringBank needs at least one steering set, or a layout with room for some")
        for name, vecs in sets.items():
            if not isinstance(vecs, SteeringVectors):
                raise ValueError(f"steering set {name!r}: expected SteeringVectors, got {type(vecs).__name__}")
        layout = layout or Layout.fitting(sets)
        if layout.columns > MAX_COLUMNS:
            raise ValueError(f"the steering sets have {layout.columns} attributes together; at most {MAX_COLUMNS} "
                             "are resident at once (load fewer sets)")
        self.layout, self.width = layout, layout.columns
        self.columns, self.attributes = {}, {}  # per resident set: its strength columns, its attribute names
        self._taken = [False] * self.width
        cast = dict(dtype=dtype, device=device)
        self.launches = nn.ModuleDict()
        for key, d, flag, gated in layout.launches:
            launch = _Launch(torch.zeros(self.width, d, **cast), torch.zeros(self.width, d, **cast) if gated else None,
                             torch.full((self.width,), GATE_ALWAYS_ON, **cast) if gated else None, flag)
            name = f"{key[0]}:{key[1]}"
            if name not in self.launches:
                self.launches[name] = nn.ModuleList()
            self.launches[name].append(launch)
        # per token: the table row that steers it (0: none); per request slot + 1: its strengths
        self.register_buffer("token_rows", torch.zeros(max_tokens, dtype=torch.long, device=device), persistent=False)
        self.register_buffer("table", torch.zeros(max_requests + 1, self.width, dtype=torch.float32, device=device),
                             persistent=False)
        self._host_table = torch.zeros(max_requests + 1, self.width, dtype=torch.float32)
        self._filled = 0
        for name, vecs in sets.items():
            self.place(name, vecs)
        self.set_requests([])

    @property
    def names(self) -> list:
        return list(self.columns)

    # -- sets in and out ------------------------------------------------------------------------------
    def place(self, name: str, vecs: SteeringVectors, freeing: tuple = ()) -> None:
        """Frees the sets in ``freeing``, then writes this one into free columns of the launches in place;
        or raises ValueError (one line) and changes nothing: a name already resident, a (site, layer),
        width, norm-preserve flag or gate the layout has no room for, or too few free columns."""
        freeing = [f for f in freeing if f in self.columns]
        if name in self.columns and name not in freeing:
            raise ValueError(f"steering set {name!r} is already resident")
        if not isinstance(vecs, SteeringVectors):
            raise ValueError(f"steering set {name!r}: expected SteeringVectors, got {type(vecs).__name__}")
        targets = []
        for key in vecs:
            e = vecs[key]
            at = f"{key[0]}:{key[1]}"
            fit = [launch for launch in (self.launches[at] if at in self.launches else ())
                   if launch.norm_preserve == vecs.norm_preserve and launch.theta.shape[1] == e.hidden_size
                   and (launch.gate_w is not None or e.gate_w is None)]
            if not fit:
                raise ValueError(f"steering set {name!r}: this engine has no room for {key[0]} layer {key[1]} "
                                 f"(D={e.hidden_size}, norm_preserve={vecs.norm_preserve}, "
                                 f"{'gated' if e.gate_w is not None else 'ungated'}); it steers "
                                 f"{', '.join(f'{s} layer {lay}' for s, lay in self.layout.keys()) or 'nothing'}")
            targets.append((fit[0], e))
        k = len(vecs.attributes)
        released = {i for f in freeing for i in self.columns[f]}
        free = [i for i, taken in enumerate(self._taken) if not taken or i in released]
        if len(free) < k:
            raise ValueError(f"steering set {name!r}: {k} attribute column(s) needed, {len(free)} free of "
                             f"{self.width} (unload a set first)")
        for f in freeing:
            self.free(f)
        # any free columns, adjacent or not: a set's columns are an index, so freeing never fragments
        cols = torch.tensor(free[:k], device=self.table.device)
        for launch, e in targets:
            launch.theta[cols] = e.theta.to(launch.theta)
            if launch.gate_w is not None and e.gate_w is not None:
                launch.gate_w[cols] = e.gate_w.to(launch.gate_w)
                launch.gate_b[cols] = e.gate_b.to(launch.gate_b) if e.gate_b is not None else 0.0
        for i in free[:k]:
            self._taken[i] = True
        self.columns[name], self.attributes[name] = free[:k], tuple(vecs.attributes)

    def free(self, name: str) -> None:
        """Gives a set's columns back, steering nothing. The caller keeps sets in use by a request in."""
        if name not in self.columns:
            raise ValueError(f"steering set {name!r} is not resident")
        cols = torch.tensor(self.columns[name], device=self.table.device)
        for launches in self.launches.values():
            for launch in launches:
                launch.clear(cols)
        for i in self.columns.pop(name):
            self._taken[i] = False
        del self.attributes[name]

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
            cols = self.columns.get(steering.name)
            if cols is None or len(cols) != len(steering.strength):
                raise RuntimeError(f"steerkit: a request steers with set {steering.name!r} and "
                                   f"{len(steering.strength)} strength(s), but "
                                   + ("no such set is resident" if cols is None else f"it has {len(cols)}"))
            self._host_table[i + 1].zero_()
            self._host_table[i + 1, cols] = torch.tensor(steering.strength, dtype=torch.float32)
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
