"""Which transformers release is installed: what every other module of ``steerkit.hf`` branches on."""
from __future__ import annotations

from importlib import metadata

def transformers_version() -> tuple[int, int]:
    """(major, minor) of the installed transformers; (0, 0) when it is missing or unreadable."""
    try:
        major, minor = (metadata.version("transformers").split(".") + ["0"])[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except (metadata.PackageNotFoundError, ValueError):
        return 0, 0
