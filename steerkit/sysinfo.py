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
        "backends": backends.info(),
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
        f"backend choice: {facts['forced_backend'] or 'automatic (cuda > triton > reference on GPU; cpu > reference on CPU)'}",
        "backends:",
    ]
    for name, b in facts["backends"].items():
        mark = "yes" if b["available"] else "no "
        lines.append(f"  {name:<10} {mark}  {b['detail']}")
    return "\n".join(lines)
