"""Output allocation for every backend's kernels, in one place so the tests can poison outputs
(fill them with NaN) and catch any element a kernel fails to write."""
from __future__ import annotations

import contextlib

import torch

from ..reference import accumulate_dtype

_poison = False


@contextlib.contextmanager
def poisoned():
    """Within this block, kernel outputs start as NaN instead of uninitialised memory."""
    global _poison
    prev, _poison = _poison, True
    try:
        yield
    finally:
        _poison = prev


def empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if _poison:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def gated_steer_outputs(h: torch.Tensor, k: int, acc: torch.dtype | None = None):
    """(out or dh [N,D] in h's dtype, [N,K] and [N,2] in the accumulation dtype)."""
    n, d = h.shape
    acc = acc or accumulate_dtype(h.dtype)
    return empty((n, d), h.dtype, h.device), empty((n, k), acc, h.device), empty((n, 2), acc, h.device)
