"""The label-only loss: cross-entropy from the hidden states at target positions only. The backbone
runs as usual, then the rows that predict a target token are gathered and only they go through the
LM head (under DDP too: the forward goes through the wrapper), so the ``[tokens, vocab]`` logits of the prompt are never built (a focus-tuning batch has a
handful of target tokens and hundreds of prompt tokens)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def unwrap_parallel(model):
    """The module inside a DistributedDataParallel wrapper (what the Trainer builds under torchrun or
    accelerate launch), or the model itself."""
    from torch.nn.parallel import DistributedDataParallel

    while isinstance(model, DistributedDataParallel):
        model = model.module
    return model


def causal_lm(model):
    """The Hugging Face ``*ForCausalLM`` inside DDP and PEFT wrappers (or the model itself)."""
    inner = unwrap_parallel(model)
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    if not hasattr(inner, "get_output_embeddings") or inner.get_output_embeddings() is None:
        raise ValueError(f"model: expected a causal LM with an output head, got {type(inner).__name__}")
    return inner


def target_logits(model, input_ids, attention_mask=None, labels=None, position_ids=None):
    """The logits of the target positions alone: ``(logits [n, vocab] float32, targets [n], keep)``,
    where ``keep`` [B, T-1] marks the positions (predicting token t+1 from row t) whose label is not
    -100, in the order of ``logits``.

    The forward runs through ``model`` itself, whatever wraps it, so a DDP wrapper prepares its
    gradient all-reduce as for any forward; a pre-hook on the output head hands it only the target
    rows. The model's own forward then applies what follows the head (Gemma-2's soft-capping)."""
    if labels is None:
        raise ValueError("labels: the label-only loss needs labels (-100 where there is no target)")
    head = causal_lm(model).get_output_embeddings()
    targets = labels[:, 1:]
    keep = targets != -100

    def target_rows(module, args):
        hidden = args[0]
        if hidden.dim() != 3 or hidden.shape[1] != labels.shape[1]:
            raise RuntimeError(f"label-only loss: the output head got hidden states of shape {list(hidden.shape)}, "
                               f"expected [B, T={labels.shape[1]}, D]")
        return (hidden[:, :-1][keep],) + tuple(args[1:])

    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    if position_ids is not None:
        kwargs["position_ids"] = position_ids
    handle = head.register_forward_pre_hook(target_rows)
    try:
        out = model(**kwargs)
    finally:
        handle.remove()
    logits = (out["logits"] if isinstance(out, dict) else out[0]).float()
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
