"""Steered next to unsteered generation, for the ``steerkit generate`` command and for scripts."""
from __future__ import annotations

import time

import torch

from .patching import steer
from .vectors import SteeringVectors


def encode_prompts(tokenizer, prompts: list[str], chat: bool = False):
    """The prompts as one left-padded batch (so every row continues from its last real token), as
    ``greedy_ids`` feeds them to ``generate``. ``chat``: each prompt is a user turn in the tokenizer's chat
    template, and the continuation is the assistant's answer."""
    if chat:
        from .hf import chat_prompt

        prompts = [chat_prompt(tokenizer, p) for p in prompts]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    # a chat template already holds the special tokens the model starts with
    return tokenizer(prompts, return_tensors="pt", padding=True, return_token_type_ids=False,
                     add_special_tokens=not chat)


def greedy_ids(model, tokenizer, prompts: list[str], max_new_tokens: int = 40,
               chat: bool = False, streamer=None) -> tuple[list[list[int]], float]:
    """Greedy continuations of every prompt in one left-padded batch (``encode_prompts``), as token ids
    cut at the end-of-sequence token, and the new tokens produced per second. ``streamer``: an object with
    ``put(ids)`` and ``end()``, told the prompt ids ([B,T]) and then each step's tokens ([B]), as
    transformers' streamers are (``steerkit.playground`` streams through it)."""
    batch = encode_prompts(tokenizer, prompts, chat).to(next(model.parameters()).device)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    if streamer is not None:
        kw["streamer"] = streamer
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model.generate(**batch, **kw)
        seconds = time.perf_counter() - t0
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    rows = []
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), len(row))
        rows.append(row[:cut])
    return rows, sum(map(len, rows)) / max(seconds, 1e-9)


def greedy(model, tokenizer, prompts: list[str], max_new_tokens: int = 40, chat: bool = False) -> tuple[list[str], float]:
    """``greedy_ids``, decoded."""
    rows, rate = greedy_ids(model, tokenizer, prompts, max_new_tokens, chat)
    return [tokenizer.decode(r, skip_special_tokens=True) for r in rows], rate


def compare(model, tokenizer, vectors: SteeringVectors, prompts: list[str], strength=1.0, tokens="all",
            max_new_tokens: int = 40, chat: bool = False) -> list[tuple[str, str, str]]:
    """(prompt, unsteered continuation, steered continuation) for each prompt, greedy decoding."""
    plain, _ = greedy(model, tokenizer, prompts, max_new_tokens, chat)
    with steer(model, vectors, strength=strength, tokens=tokens):
        steered, _ = greedy(model, tokenizer, prompts, max_new_tokens, chat)
    return list(zip(prompts, plain, steered))
