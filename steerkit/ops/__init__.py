"""steerkit's ops: one torch.library custom op per concern, each with a fake implementation, autograd
and dispatch to a backend (steerkit.backends)."""
from .gated_steer import gated_steer
from .steer_add_rmsnorm import steer_add_rmsnorm
from .steer_linear import steer_linear

__all__ = ["gated_steer", "steer_add_rmsnorm", "steer_linear"]
