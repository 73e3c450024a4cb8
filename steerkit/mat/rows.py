"""The rows the MAT-Steer trainer reads, whether they sit in memory or in shards on disk.

``TensorRows`` wraps a tensor. ``ShardRows`` holds, per row, which shard and which row of it, and reads
the rows a minibatch asks for with one ``pread`` each, so training from shards holds one minibatch (and,
for a streaming statistic, one shard) in memory, never the data set. Both give the same rows for the
same indices, so the trainer draws the same batches from either.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import torch


class TensorRows:
    """Rows of an in-memory [n, D] tensor."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    def to(self, device) -> "TensorRows":
        return TensorRows(self.x.to(device))

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x[idx.to(self.x.device)]

    def chunks(self):
        yield self.x

    def all(self) -> torch.Tensor:
        return self.x


def data_offset(path: Path, name: str) -> tuple:
    """(byte offset, [rows, D]) of float32 tensor ``name`` in a safetensors file, from its header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    entry = header[name]
    if entry["dtype"] != "F32":
        raise ValueError(f"{path}: {name} is {entry['dtype']}, expected F32")
    return 8 + n + entry["data_offsets"][0], entry["shape"]


class ShardRows:
    """The rows of one (attribute, label) group across a shard folder, read on demand."""

    def __init__(self, files: list, shard_of_row: np.ndarray, row_in_shard: np.ndarray, dim: int):
        self.files = files
        self.shard = shard_of_row
        self.row = row_in_shard
        self._dim = dim
        self._offsets = [data_offset(p, "acts")[0] for p in files]
        self._fds: dict = {}
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.shard)

    @property
    def dim(self) -> int:
        return self._dim

    def to(self, device) -> "ShardRows":
        self.device = torch.device(device)  # where gathered rows go; the rows stay on disk
        return self

    def _fd(self, s: int) -> int:
        if s not in self._fds:
            self._fds[s] = os.open(self.files[s], os.O_RDONLY)
        return self._fds[s]

    def gather(self, idx: torch.Tensor) -> torch.Tensor:
        width = self._dim * 4
        out = np.empty((len(idx), self._dim), dtype=np.float32)
        for j, i in enumerate(idx.tolist()):
            s, r = int(self.shard[i]), int(self.row[i])
            out[j] = np.frombuffer(os.pread(self._fd(s), width, self._offsets[s] + r * width), dtype=np.float32)
        return torch.from_numpy(out).to(self.device)

    def chunks(self):
        """This group's rows shard by shard (one shard's rows in memory at a time)."""
        for s in np.unique(self.shard):
            rows = self.row[self.shard == s]
            yield self.gather_from(int(s), rows)

    def gather_from(self, s: int, rows: np.ndarray) -> torch.Tensor:
        width = self._dim * 4
        lo, hi = int(rows.min()), int(rows.max()) + 1
        block = np.frombuffer(os.pread(self._fd(s), (hi - lo) * width, self._offsets[s] + lo * width),
                              dtype=np.float32).reshape(hi - lo, self._dim)
        return torch.from_numpy(block[rows - lo].copy())

    def all(self) -> torch.Tensor:
        return torch.cat(list(self.chunks())) if len(self) else torch.zeros(0, self._dim)

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


def concat_gather(sources: list, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of the sources laid end to end (as ``torch.cat`` of them would number them)."""
    bounds = np.cumsum([0] + [len(s) for s in sources])
    idx_np = idx.numpy()
    which = np.searchsorted(bounds, idx_np, side="right") - 1
    out = torch.empty(len(idx), sources[0].dim, dtype=torch.float32)
    for k, src in enumerate(sources):
        sel = np.nonzero(which == k)[0]
        if len(sel):
            out[torch.from_numpy(sel)] = src.gather(torch.from_numpy(idx_np[sel] - bounds[k])).float().cpu()
    return out
