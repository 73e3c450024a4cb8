"""steerkit's ops: one torch.library custom op per concern, each with a fake implementation, autograd
and dispatch to a backend (steerkit.backends)."""
from .gated_steer import gated_steer

__all__ = ["gated_steer"]
