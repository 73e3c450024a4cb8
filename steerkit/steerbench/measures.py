"""What a steered continuation costs and changes, beside what the judges score.

* ``nll``: mean negative log-likelihood per token of each continuation under the unsteered model,
  given its prompt (fluency: steering that breaks the text makes it improbable).
* ``distinct``: distinct n-grams over all n-grams of a set of continuations (degenerate repetition
  drives it down).
* ``frontier``: the most judge shift a strength sweep reaches within a fluency budget.
* ``changed``: the share of a continuation's tokens that differ from the unsteered continuation,
  position by position (how much steering touched it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..focus.loss import target_logits


def nll(model, tokenizer, prompts: list[str], continuations: list[list[int]], batch_size: int = 16) -> list[float]:
    """Per-token NLL of each continuation (token ids) after its prompt, under ``model`` as it is."""
    device = next(model.parameters()).device
    encoded = [(tokenizer(p, add_special_tokens=True)["input_ids"], list(c)) for p, c in zip(prompts, continuations)]
    # batches of rows of about one length, so little of a batch is padding; returned in the caller's order
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    out: list[float] = [0.0] * len(encoded)
    for s in range(0, len(order), batch_size):
        part = order[s:s + batch_size]
        rows = [encoded[i] for i in part]
        width = max(len(a) + len(b) for a, b in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, (a, b) in enumerate(rows):  # right padding: positions count from each row's start
            ids[i, :len(a) + len(b)] = torch.tensor(a + b)
            mask[i, :len(a) + len(b)] = 1
            labels[i, len(a):len(a) + len(b)] = torch.tensor(b, dtype=torch.long)
        with torch.no_grad():  # the head sees the continuation's rows only, not the prompt's
            logits, targets, keep = target_logits(model, ids.to(device), mask.to(device), labels.to(device))
            tok_nll = torch.zeros(keep.shape, dtype=torch.float32, device=device)
            tok_nll[keep] = F.cross_entropy(logits, targets, reduction="none")
        for i, v in zip(part, (tok_nll.sum(1) / keep.sum(1).clamp_min(1)).tolist()):
            out[i] = v
    return out


def distinct(texts: list[str], n: int = 3) -> float:
    """Distinct word n-grams over all word n-grams of ``texts`` (1.0 when there are none)."""
    grams = [tuple(w[i:i + n]) for w in (t.split() for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def changed(steered: list[list[int]], plain: list[list[int]]) -> list[float]:
    """Share of each steered continuation's positions whose token differs from the unsteered one."""
    out = []
    for a, b in zip(steered, plain):
        width = max(len(a), len(b))
        out.append(sum(x != y for x, y in zip(a + [-1] * (width - len(a)), b + [-2] * (width - len(b)))) / width
                   if width else 0.0)
    return out


def frontier(curve: list[tuple[float, float]], budget: float) -> float:
    """The largest judge shift on the piecewise-linear curve at ΔNLL ≤ budget."""
    best = 0.0
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if x0 <= budget:
            best = max(best, y0)
        if x1 <= budget:
            best = max(best, y1)
        elif x0 < budget < x1:  # the segment crosses the budget: the point where it does
            best = max(best, y0 + (y1 - y0) * (budget - x0) / (x1 - x0))
    return best
