"""The embedded toy world of ``steerkit demo``: a template corpus with two independent attributes,
rule detectors for both, and a tiny Llama trained on it on the CPU (cached after the first run)."""
from .corpus import ATTRIBUTES, detect, mat_examples, prompts, texts
from .model import cache_dir, toy_model

__all__ = ["ATTRIBUTES", "detect", "mat_examples", "prompts", "texts", "cache_dir", "toy_model"]
