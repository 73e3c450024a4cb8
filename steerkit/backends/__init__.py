"""Backend registry and dispatch.

Each backend is one module in this package exposing ``NAME``, ``status() -> (ok, detail)``,
``supports(device_type, dtype) -> str | None`` (None when it can run, else why not) and the op
functions (``gated_steer_forward`` and ``gated_steer_backward_rows``, with the signatures of
``steerkit.reference.gated_steer_forward_rows`` and ``gated_steer_backward_rows``).

Automatic choice, per call, from the tensor's device and dtype:
  cuda tensors: cuda extension, then triton, then reference;
  cpu tensors:  cpu extension, then reference (triton runs on the CPU only under
                TRITON_INTERPRET=1, which is for testing, so it is never chosen automatically).
``STEERKIT_BACKEND=<name>`` or ``steerkit.set_backend(name)`` forces one; a forced backend that
cannot run an input raises instead of silently falling back.
"""
from __future__ import annotations

import os
from types import ModuleType

import torch

from . import cpu, cuda, reference, triton

BACKENDS: dict[str, ModuleType] = {m.NAME: m for m in (reference, cpu, cuda, triton)}
_AUTO_ORDER = {"cuda": ("cuda", "triton", "reference"), "cpu": ("cpu", "reference")}
_forced: str | None = None


def _check_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(BACKENDS)} or None for automatic")
    return name


def set_backend(name: str | None) -> None:
    """Force every op onto one backend (``None`` or ``"auto"`` restores automatic choice)."""
    global _forced
    if name is None or name == "auto":
        _forced = None
        return
    _check_name(name)
    ok, detail = BACKENDS[name].status()
    if not ok:
        raise RuntimeError(f"backend {name!r} is not available: {detail}")
    _forced = name


def get_backend() -> str | None:
    """The forced backend's name, or None when the choice is automatic."""
    if _forced is not None:
        return _forced
    env = os.environ.get("STEERKIT_BACKEND", "").strip()
    return None if env in ("", "auto") else _check_name(env)


def select(t: torch.Tensor) -> ModuleType:
    """The backend that runs an op whose main input is ``t``."""
    forced = get_backend()
    if forced is not None:
        be = BACKENDS[forced]
        ok, detail = be.status()
        if not ok:
            raise RuntimeError(f"backend {forced!r} was forced but is not available: {detail}")
        why = be.supports(t.device.type, t.dtype)
        if why is not None:
            raise RuntimeError(f"backend {forced!r} was forced but cannot run this input: {why}")
        return be
    for name in _AUTO_ORDER.get(t.device.type, ("reference",)):
        be = BACKENDS[name]
        if be.status()[0] and be.supports(t.device.type, t.dtype) is None:
            return be
    return reference


def info() -> dict[str, dict[str, object]]:
    """For each backend: whether it is available and its version, or why it is missing."""
    out = {}
    for name, be in BACKENDS.items():
        ok, detail = be.status()
        out[name] = {"available": ok, "detail": detail}
    return out
