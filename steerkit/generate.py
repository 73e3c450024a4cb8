"""Steered next to unsteered generation, for the ``steerkit generate`` command and for scripts."""
from __future__ import annotations

from pathlib import Path

import torch

from .patch import steer
from .vectors import SteeringVectors


def load_local_model(path: str | Path, dtype: torch.dtype | None = None, device: str | None = None):
    """A causal LM and its tokenizer from a local folder; never downloads anything."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no local Hugging Face model at {path} (expected {path / 'config.json'}); "
                                "steerkit loads local checkpoints only and never downloads")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=dtype)
    if device:
        model = model.to(device)
    return model.eval(), tok


def compare(model, tokenizer, vectors: SteeringVectors, prompts: list[str], strength=1.0, tokens="all",
            max_new_tokens: int = 40) -> list[tuple[str, str, str]]:
    """(prompt, unsteered continuation, steered continuation) for each prompt, greedy decoding."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # generation continues every row from its last real token
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(next(model.parameters()).device)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        plain = model.generate(**batch, **kw)
        with steer(model, vectors, strength=strength, tokens=tokens):
            steered = model.generate(**batch, **kw)
    n = batch["input_ids"].shape[1]
    decode = lambda ids: tokenizer.decode(ids[n:], skip_special_tokens=True)  # noqa: E731
    return [(p, decode(a), decode(b)) for p, a, b in zip(prompts, plain, steered)]
