"""Steered next to unsteered generation, for the ``steerkit generate`` command and for scripts."""
from __future__ import annotations

import time

import torch

from .patching import steer
from .vectors import SteeringVectors


def greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 40) -> tuple[list[str], float]:
    """Greedy continuations of every prompt in one left-padded batch (so every row continues from its
    last real token), and the new tokens produced per second."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, return_token_type_ids=False)
    batch = batch.to(next(model.parameters()).device)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model.generate(**batch, **kw)
        seconds = time.perf_counter() - t0
    new = out[:, batch["input_ids"].shape[1]:]
    produced = int((new != tokenizer.pad_token_id).sum())
    return [tokenizer.decode(o, skip_special_tokens=True) for o in new], produced / max(seconds, 1e-9)


def compare(model, tokenizer, vectors: SteeringVectors, prompts: list[str], strength=1.0, tokens="all",
            max_new_tokens: int = 40) -> list[tuple[str, str, str]]:
    """(prompt, unsteered continuation, steered continuation) for each prompt, greedy decoding."""
    plain, _ = greedy(model, tokenizer, prompts, max_new_tokens)
    with steer(model, vectors, strength=strength, tokens=tokens):
        steered, _ = greedy(model, tokenizer, prompts, max_new_tokens)
    return list(zip(prompts, plain, steered))
