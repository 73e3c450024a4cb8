"""Accelerated LoRA: a fused LoRA linear (forward and backward, W frozen) and ``accelerate()``, which
puts it under a PEFT model's LoRA layers in place."""
from .accelerate import Accelerated, accelerate, why_not
from .fused import lora_linear

__all__ = ["Accelerated", "accelerate", "why_not", "lora_linear"]
