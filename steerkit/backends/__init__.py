"""The one backend registry: every op steerkit runs picks its kernel here.

Each backend is one module in this package exposing ``NAME``, ``status() -> (ok, detail)``,
``supports(device_type, dtype, k=None) -> str | None`` (None when it can run an input, else why not;
``k`` is the number of steering attributes where the op has one) and, for each op in ``OPS`` it
implements, that op's functions (with the signatures of the ``steerkit.reference`` functions of the
same name). A backend that lacks an op simply does not define its functions.

Automatic choice, per call, from the main input's device, dtype and K:
  cuda tensors: cuda extension, then triton, then reference;
  cpu tensors:  cpu extension, then reference (triton runs on the CPU only under
                TRITON_INTERPRET=1, which is for testing, so it is never chosen automatically).
A backend is skipped when it is unavailable, lacks the op, or cannot run the input; ``route`` says
which took the call and why the ones before it did not.

``STEERKIT_BACKEND`` (or ``steerkit.set_backend``) forces a backend: ``triton`` for every op, or
per op, ``cuda,two_gemm=reference`` (cuda everywhere, torch's GEMM for the two-GEMM op). A forced
backend that lacks an op falls through to the automatic order for that op (``steerkit info`` lists
where); one that has the op but cannot run an input raises instead of silently falling back.
"""
from __future__ import annotations

import functools
import os
from types import ModuleType

import torch

from . import cpu, cuda, reference, triton

# op -> the functions a backend defines to implement it
OPS: dict[str, tuple[str, ...]] = {
    "gated_steer": ("gated_steer_forward", "gated_steer_backward_rows"),
    "steer_add_rmsnorm": ("steer_add_rmsnorm_forward",),
    "two_gemm": ("two_gemm",),
}
BACKENDS: dict[str, ModuleType] = {m.NAME: m for m in (reference, cpu, cuda, triton)}
AUTO_ORDER = {"cuda": ("cuda", "triton", "reference"), "cpu": ("cpu", "reference")}
ENV = "STEERKIT_BACKEND"
_forced: dict[str | None, str] | None = None  # set_backend's choice (None: read ENV); key None = every op
_routes: dict[tuple, tuple[str, tuple[str, ...]]] = {}


def _check_name(name: str, where: str = "backend") -> str:
    if name not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {name!r}; expected one of {sorted(BACKENDS)} or auto")
    return name


def _check_op(op: str, where: str) -> str:
    if op not in OPS:
        raise ValueError(f"{where}: unknown op {op!r}; expected one of {sorted(OPS)}")
    return op


def parse(spec: str, where: str = ENV) -> dict[str | None, str]:
    """``"triton"`` -> {None: "triton"}; ``"cuda,two_gemm=reference"`` -> {None: "cuda", "two_gemm": "reference"};
    ``""``/``"auto"`` -> {}. Raises one line naming ``where`` on anything else."""
    out: dict[str | None, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        if part in ("", "auto"):
            continue
        op, _, name = part.rpartition("=")
        key = _check_op(op.strip(), where) if op else None
        if key in out:
            raise ValueError(f"{where}: {'op ' + key if key else 'the default backend'} is given twice in {spec!r}")
        out[key] = _check_name(name.strip(), where)
    return out


def implements(name: str, op: str) -> bool:
    be = BACKENDS[name]
    return all(hasattr(be, f) for f in OPS[op])


@functools.cache
def status(name: str) -> tuple[bool, str]:
    """(available, version or why not) of one backend, found out once per process."""
    return BACKENDS[name].status()


def set_backend(name: str | None, op: str | None = None) -> None:
    """Force every op (or just ``op``) onto one backend; ``None`` or ``"auto"`` restores automatic
    choice (for ``op`` alone: drops its override). Overrides ``STEERKIT_BACKEND`` while set."""
    global _forced
    if op is not None:
        _check_op(op, "set_backend")
    forced = dict(_forced if _forced is not None else parse(os.environ.get(ENV, "")))
    if name is None or name == "auto":
        if op is None:
            _forced = None
        else:
            forced.pop(op, None)
            _forced = forced
        _routes.clear()
        return
    _check_name(name, "set_backend")
    ok, detail = status(name)
    if not ok:
        raise RuntimeError(f"set_backend: backend {name!r} is not available: {detail}")
    if op is None:
        forced = {None: name}
    else:
        forced[op] = name
    _forced = forced
    _routes.clear()


def forced() -> dict[str | None, str]:
    """What is forced now: {None: default backend, op: backend, ...}; empty when the choice is automatic."""
    return dict(_forced) if _forced is not None else parse(os.environ.get(ENV, ""))


def get_backend(op: str | None = None) -> str | None:
    """The backend forced for ``op`` (or for every op), or None when that choice is automatic."""
    f = forced()
    return f.get(op, f.get(None)) if op is not None else f.get(None)


def route(op: str, device_type: str, dtype: torch.dtype, k: int | None = None) -> tuple[str, tuple[str, ...]]:
    """(backend name, why each backend before it was passed over) for ``op`` on such an input."""
    spec = os.environ.get(ENV, "") if _forced is None else None
    key = (op, device_type, dtype, k, spec)
    hit = _routes.get(key)
    if hit is None:
        hit = _routes[key] = _route(op, device_type, dtype, k)
    return hit


def _route(op, device_type, dtype, k):
    _check_op(op, "route")
    order = AUTO_ORDER.get(device_type, ("reference",))
    skipped = []
    name = get_backend(op)
    if name is not None:
        if implements(name, op):
            ok, detail = status(name)
            if not ok:
                raise RuntimeError(f"backend {name!r} was forced but is not available: {detail}")
            why = BACKENDS[name].supports(device_type, dtype, k)
            if why is not None:
                raise RuntimeError(f"backend {name!r} was forced but cannot run this input: {why}")
            return name, ()
        skipped.append(f"{name}: forced, but it has no {op} kernel")
        order = tuple(n for n in order if n != name)
    for name in order:
        if not implements(name, op):
            skipped.append(f"{name}: no {op} kernel")
            continue
        ok, detail = status(name)
        why = None if ok else f"not available ({detail})"
        why = why or BACKENDS[name].supports(device_type, dtype, k)
        if why is None:
            return name, tuple(skipped)
        skipped.append(f"{name}: {why}")
    return "reference", tuple(skipped)


def select(op: str, t: torch.Tensor, k: int | None = None) -> ModuleType:
    """The backend module that runs ``op`` whose main input is ``t`` (with ``k`` attributes)."""
    return BACKENDS[route(op, t.device.type, t.dtype, k)[0]]


def info() -> dict[str, dict[str, object]]:
    """For each backend: whether it is available, its version or why it is missing, the ops it
    implements and, for those it lacks, where a call forced onto it goes."""
    out = {}
    for name in BACKENDS:
        ok, detail = status(name)
        has = [op for op in OPS if implements(name, op)]
        out[name] = {"available": ok, "detail": detail, "ops": has,
                     "falls_through": {op: "the automatic order" for op in OPS if op not in has}}
    return out


def routes(device_types: tuple[str, ...] | None = None, dtype: torch.dtype = torch.float32) -> dict[str, dict]:
    """Which backend takes each op on each device (cpu, and cuda where a GPU is visible) under the
    current forcing, and why the ones before it were passed over: what ``steerkit info`` prints."""
    if device_types is None:
        device_types = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    out: dict[str, dict] = {}
    for dev in device_types:
        for op in OPS:
            try:
                name, skipped = route(op, dev, dtype)
                out.setdefault(dev, {})[op] = {"backend": name, "skipped": list(skipped)}
            except (RuntimeError, ValueError) as err:
                out.setdefault(dev, {})[op] = {"backend": None, "error": str(err)}
    return out
