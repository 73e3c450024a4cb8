"""Where steering acts, token by token: ``steerkit.inspect`` and ``steerkit inspect``.

  trace   runs the unsteered and the steered generation and reads each token's gates, strength × gate
          and NLL under the unsteered model (``inspect``, ``Inspection``)
  html    the self-contained page: both continuations side by side, one lane per attribute
  figure  the same as a PNG (matplotlib)
"""
from .trace import Inspection, PromptView, Trace, inspect

__all__ = ["Inspection", "PromptView", "Trace", "inspect"]
