"""MAT-Steer: collect activations at a site, the losses, the trainer and gate diagnostics."""
from .._lazy import lazy

_NAMES = {"Activations": ".collect", "collect_activations": ".collect", "text_activations": ".collect",
          "Example": ".data", "load_examples": ".data",
          "losses": ".losses", "MATConfig": ".config", "train": ".trainer", "auc": ".evaluate",
          "gate_report": ".evaluate"}
__getattr__, __dir__ = lazy(__name__, _NAMES)
__all__ = list(_NAMES)
