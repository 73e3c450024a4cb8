"""Where steerkit keeps what it builds once and reuses: the toy models, a real model assembled from
chunk packages."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$STEERKIT_CACHE``, else ``$XDG_CACHE_HOME/steerkit``, else ``~/.cache/steerkit``."""
    root = os.environ.get("STEERKIT_CACHE")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "steerkit"
