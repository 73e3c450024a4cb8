"""steerkit: fused kernels for gated multi-attribute steering (MAT-Steer) and focus instruction
tuning of Hugging Face models."""
from __future__ import annotations

__version__ = "0.1.0"

from . import reference
from .backends import get_backend, set_backend
from .info import info
from .ops import gated_steer
from .vectors import SteeringVectors
from .patch import Handle, patch, steer
from . import models
from . import mat
from . import focus
from . import lora

__all__ = ["gated_steer", "SteeringVectors", "patch", "steer", "Handle", "models", "mat", "focus", "lora", "reference", "set_backend", "get_backend", "info", "__version__"]
