"""The label-only loss: cross-entropy from the hidden states at target positions only. The backbone
runs as usual, then the rows that predict a target token are gathered and only they go through the
LM head, so the ``[tokens, vocab]`` logits of the prompt are never built (a focus-tuning batch has a
handful of target tokens and hundreds of prompt tokens)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_lm(model):
    """The Hugging Face ``*ForCausalLM`` inside a PEFT wrapper (or the model itself)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not hasattr(inner, "get_output_embeddings") or inner.get_output_embeddings() is None:
        raise ValueError(f"model: expected a causal LM with an output head, got {type(inner).__name__}")
    return inner


def target_logits(model, input_ids, attention_mask=None, labels=None, position_ids=None):
    """The logits of the target positions alone: ``(logits [n, vocab] float32, targets [n], keep)``,
    where ``keep`` [B, T-1] marks the positions (predicting token t+1 from row t) whose label is not
    -100, in the order of ``logits``. Gemma-2's final soft-capping is applied."""
    if labels is None:
        raise ValueError("labels: the label-only loss needs labels (-100 where there is no target)")
    lm = causal_lm(model)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    hidden = lm.base_model(**kwargs)[0]
    targets = labels[:, 1:]
    keep = targets != -100
    rows = hidden[:, :-1][keep]  # [n_targets, hidden]
    logits = lm.get_output_embeddings()(rows).float()
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits, targets[keep], keep


def label_only_loss(model, input_ids, attention_mask=None, labels=None, position_ids=None,
                    num_items: int | torch.Tensor | None = None) -> torch.Tensor:
    """Mean next-token NLL over the positions whose label is not -100, as HF's causal-LM loss computes
    it, from the gathered rows alone. ``num_items`` (the Trainer's count over accumulated batches)
    replaces the mean by sum / num_items."""
    logits, targets, _ = target_logits(model, input_ids, attention_mask, labels, position_ids)
    if num_items is None:
        return F.cross_entropy(logits, targets)
    return F.cross_entropy(logits, targets, reduction="sum") / num_items
