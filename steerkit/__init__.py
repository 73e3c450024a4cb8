"""steerkit: fused kernels for gated multi-attribute steering (MAT-Steer) and focus instruction
tuning of Hugging Face models. Names are imported on first use, so the CLI starts without torch."""
from __future__ import annotations

from ._lazy import lazy

__version__ = "0.1.0"

_NAMES = {
    "gated_steer": ".ops", "SteeringVectors": ".vectors", "patch": ".patching", "steer": ".patching",
    "Handle": ".patching", "inspect": ".gateview", "load_model": ".hf", "save_model": ".hf", "set_backend": ".backends", "get_backend": ".backends", "info": ".sysinfo",
    **{m: "." + m for m in ("models", "mat", "focus", "lora", "reference", "hf")},
}
__getattr__, __dir__ = lazy(__name__, _NAMES)
__all__ = [*_NAMES, "__version__"]
