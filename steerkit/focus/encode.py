"""Tokenizing a prompt and its completion the same way for training and for scoring: the prompt's
ids, then the completion's, so the loss (and a label's log-likelihood) covers exactly the target."""
from __future__ import annotations

import torch


def encode(tok, prompt: str, completion: str, chat: bool = False, max_length: int | None = None):
    """(prompt_ids, completion_ids). The completion is tokenized in context (prompt + completion) and
    split where the prompt's own ids end, so a BPE merge across the boundary cannot shift it; when the
    two disagree the completion is tokenized on its own. A chat-rendered prompt already has its
    special tokens. A prompt too long for ``max_length`` loses tokens from its start."""
    special = not chat
    p = tok(prompt, add_special_tokens=special)["input_ids"]
    full = tok(prompt + completion, add_special_tokens=special)["input_ids"]
    c = full[len(p):] if full[:len(p)] == p and len(full) > len(p) else tok(completion, add_special_tokens=False)["input_ids"]
    if not c:
        raise ValueError(f"completion {completion!r} tokenizes to nothing")
    if max_length is not None and len(p) + len(c) > max_length:
        keep = max_length - len(c)
        if keep < 1:
            raise ValueError(f"max_length={max_length} leaves no room for the prompt before a "
                             f"{len(c)}-token completion")
        bos = special and p[0] == tok.bos_token_id
        p = p[:1] + p[len(p) - keep + 1:] if bos and keep > 1 else p[len(p) - keep:]
    return list(p), list(c)


def pad_batch(rows: list[tuple[list[int], list[int]]], pad_id: int, left: bool = False):
    """input_ids, attention_mask and labels (-100 outside the completion) for (prompt, completion) rows."""
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        n = len(p) + len(c)
        start = width - n if left else 0
        ids[i, start:start + n] = torch.tensor(p + c)
        mask[i, start:start + n] = 1
        labels[i, start + len(p):start + n] = torch.tensor(c)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def pad_id(tok) -> int:
    if tok.pad_token_id is not None:
        return tok.pad_token_id
    if tok.eos_token_id is not None:
        return tok.eos_token_id
    return 0


def pack_batch(rows: list[tuple[list[int], list[int]]]):
    """The rows end to end in one sequence, with positions restarting at 0 for each: no padding.
    Hugging Face models read restarting ``position_ids`` (and no attention mask) as packed sequences
    and keep attention inside each one (varlen kernels with flash attention, a block-diagonal mask
    otherwise)."""
    ids, pos, labels = [], [], []
    for p, c in rows:
        ids += p + c
        pos += range(len(p) + len(c))
        labels += [-100] * len(p) + list(c)
    return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([pos]), "labels": torch.tensor([labels])}


def packing_problem(model) -> str | None:
    """None when ``model`` computes packed sequences exactly as separate ones, else why not."""
    from .. import hf, models
    from .loss import causal_lm

    if not hf.reads_packed_sequences():
        return "this transformers version does not read packed sequences from position_ids"
    config = causal_lm(model).config
    spec = models.REGISTRY.get(getattr(config, "model_type", None))
    if spec is None:
        return f"architecture {getattr(config, 'model_type', None)!r} is not in the registry"
    if not spec.packs:
        return f"{spec.family} attends across packed sequences"
    return None
