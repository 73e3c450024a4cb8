"""What is built and usable here: ``steerkit.info()`` and ``steerkit info``."""
from __future__ import annotations

import platform

import torch

from . import backends


def info(print_it: bool = True) -> dict:
    """Versions, devices, and for each backend whether it is available (its version) or why not.

    Returns the same facts as a dict; prints them as a short table unless ``print_it`` is False.
    """
    from . import __version__
    from .backends._native import build_info

    facts = {
        "steerkit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "forced_backend": backends.get_backend(),
        "forced": {op or "*": name for op, name in backends.forced().items()},
        "backends": backends.info(),
        "routes": backends.routes(),
        "build": build_info(),
    }
    try:
        import transformers

        facts["transformers"] = transformers.__version__
    except ImportError:
        facts["transformers"] = None
    if print_it:
        print(format_info(facts))
    return facts


def format_info(facts: dict) -> str:
    lines = [
        f"steerkit {facts['steerkit']}  python {facts['python']}  torch {facts['torch']}  "
        f"transformers {facts['transformers'] or 'not installed'}",
        f"GPU: {facts['cuda_device'] or 'none visible'}",
        "backend choice: " + (", ".join(f"{op}={name}" if op != "*" else name for op, name in facts["forced"].items())
                              + f" (forced by {backends.ENV} or set_backend)" if facts["forced"] else
                              "automatic (cuda > triton > reference on GPU; cpu > reference on CPU)"),
        "backends:",
    ]
    for name, b in facts["backends"].items():
        mark = "yes" if b["available"] else "no "
        lacks = f"  [no {', '.join(b['falls_through'])}: falls through]" if b["falls_through"] else ""
        lines.append(f"  {name:<10} {mark}  {b['detail']}{lacks}")
    for dev, ops in facts["routes"].items():
        lines.append(f"ops on {dev} (float32):")
        for op, r in ops.items():
            if r["backend"] is None:
                lines.append(f"  {op:<18} refused: {r['error']}")
                continue
            why = f"  (passed over: {'; '.join(r['skipped'])})" if r["skipped"] else ""
            lines.append(f"  {op:<18} {r['backend']}{why}")
    return "\n".join(lines)
