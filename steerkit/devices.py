"""Which device a job runs on: one check, so asking for CUDA on a machine without it is one clear line
before any work, never an assertion from deep inside torch."""
from __future__ import annotations


def resolve_device(device: str | None, arg: str = "device") -> str:
    """``device`` checked against this machine; None means CUDA when available, else the CPU."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{arg}: {device!r} is not a device (expected e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "meta":
        raise ValueError(f"{arg}: the meta device holds no values; use cpu or cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{arg}: {device!r} asked for, but this machine has no usable CUDA device "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{arg}: {device!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)
        if backend is None or not callable(getattr(backend, "is_available", None)) or not backend.is_available():
            raise ValueError(f"{arg}: {device!r} is not available on this machine")
    return str(dev)
