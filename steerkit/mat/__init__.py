"""MAT-Steer: collect activations at a site, the losses, the trainer and gate diagnostics."""
from . import losses
from .collect import Activations, collect_activations
from .data import Example, load_examples
from .evaluate import auc, gate_report
from .train import MATConfig, train

__all__ = ["Activations", "collect_activations", "Example", "load_examples", "losses", "MATConfig", "train",
           "auc", "gate_report"]
