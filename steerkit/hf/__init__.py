"""Every Hugging Face calling convention steerkit relies on, and nothing else.

transformers renames keywords between releases (``past_key_value`` → ``past_key_values`` → ``cache``;
``torch_dtype`` → ``dtype``; ``cache_position`` passed, then dropped; an all-ones ``attention_mask``
passed, then omitted). Every other module asks this package, so a release that moves a name is fixed
here, once. Nothing outside it reads an HF keyword or output attribute by name (``tests/test_hf.py``
scans for them). One module per concern; every name below is importable from ``steerkit.hf`` itself.

``release``      ``transformers_version``: the installed release, which the others branch on
``calls``        the call conventions of a forward. What a call carries (the kwargs of a forward
                 pre-hook): ``call_cache``, ``cache_length``, ``past_length``, ``call_mask``,
                 ``call_tokens``. How to call a model: ``cache_kwargs``, ``step_kwargs``, ``static_cache``,
                 ``output_cache``. The decoder stack and its layers: ``base_model``, ``layer_signature``
                 (``CHANGES_THE_MATH``), ``wants_attentions``
``checkpoints``  local checkpoints (HF folders and GGUF files) on every release: ``open_checkpoint`` (config
                 and tokenizer before the weights), ``load_model``, ``save_model``, ``checkpoint_files``,
                 ``dtype_kwargs`` for ``from_pretrained``; ``chat_prompt`` and ``check_chat``
``training``     what training needs: ``reads_packed_sequences``, ``trainer_loss_scale``,
                 ``output_head_name``, ``linear_layer_names``
``attention``    ``grouped_query_sdpa``: shared key/value heads inside SDPA while focus training runs on the CPU
"""
from __future__ import annotations

from .attention import GQA_SDPA, grouped_query_sdpa
from .calls import (CACHE_NAMES, CHANGES_THE_MATH, LayerSignature, base_model, cache_kwargs, cache_length, call_cache,
                    call_mask, call_tokens, layer_signature, output_cache, past_length, static_cache, step_kwargs,
                    wants_attentions)
from .checkpoints import (GGUF_NEEDS, Checkpoint, check_chat, chat_prompt, checkpoint_files, dtype_kwargs, load_model,
                          open_checkpoint, save_model)
from .release import transformers_version
from .training import linear_layer_names, output_head_name, reads_packed_sequences, trainer_loss_scale

__all__ = ["GQA_SDPA", "grouped_query_sdpa", "CACHE_NAMES", "CHANGES_THE_MATH", "LayerSignature", "base_model",
           "cache_kwargs", "cache_length", "call_cache", "call_mask", "call_tokens", "layer_signature",
           "output_cache", "past_length", "static_cache", "step_kwargs", "wants_attentions", "GGUF_NEEDS",
           "Checkpoint", "check_chat", "chat_prompt", "checkpoint_files", "dtype_kwargs", "load_model",
           "open_checkpoint", "save_model", "transformers_version", "linear_layer_names", "output_head_name",
           "reads_packed_sequences", "trainer_loss_scale"]
