"""What training needs of transformers: whether the release reads packed sequences, the Trainer's
loss scale across processes, and the output head's and linear layers' names (for LoRA)."""
from __future__ import annotations

import torch

def reads_packed_sequences() -> bool:
    """Whether this release finds packed sequences from restarting position_ids (no mask), so a
    padding-free batch attends within each sequence (transformers 4.53+)."""
    try:
        import transformers.masking_utils as mu
    except ImportError:
        return False
    return hasattr(mu, "find_packed_sequence_indices")


def trainer_loss_scale(trainer, num_items_in_batch) -> int:
    """What the Trainer multiplies its own loss by when the item count was summed over processes
    (``average_tokens_across_devices``: on by default in transformers 5, off in 4.51): the number of
    processes, so that DDP's mean over ranks gives the global token mean. 1 in one process."""
    processes = trainer.accelerator.num_processes
    if num_items_in_batch is None or processes <= 1 or not getattr(trainer.args, "average_tokens_across_devices", False):
        return 1
    return processes


def output_head_name(model) -> str:
    """The qualified module name of a causal LM's output head (``lm_head`` in Llama), found by identity
    through ``get_output_embeddings``, so it holds for any family that defines it."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(f"model: {type(model).__name__} has no output head to adapt")
    for name, module in model.named_modules():
        if module is head:
            return name
    raise ValueError(f"model: the output head of {type(model).__name__} is not one of its modules")


def linear_layer_names(model, exclude: str = "") -> tuple[str, ...]:
    """The last name of every ``nn.Linear`` module but ``exclude`` (what PEFT's "all-linear" adapts in a
    causal LM: every linear layer but the head), once each, in model order."""
    names = (name.rsplit(".", 1)[-1] for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and name != exclude)
    return tuple(dict.fromkeys(names))
