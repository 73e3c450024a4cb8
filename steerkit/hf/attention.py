"""The attention implementation registered for grouped-query training on the CPU: key/value heads
shared inside SDPA (``grouped_query_sdpa``), checked against SDPA's own logits by a probe forward."""
from __future__ import annotations

import contextlib
import importlib.util

import torch

# The attention implementation ``grouped_query_sdpa`` switches a model to while it trains.
GQA_SDPA = "steerkit_sdpa_gqa"


def _sdpa_gqa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' SDPA attention, with grouped-query attention's key and value heads shared inside
    SDPA (``enable_gqa``) instead of repeated to every query head first: the backward then keeps them
    at their own head count. transformers itself shares them only without a mask, since the fused
    GPU kernels take no mask with it; the CPU flash kernel takes both. Anything beyond plain
    attention (biases, soft-capping, sinks, output attentions, one-token decoding) goes to
    transformers' own SDPA function."""
    sdpa = _attention_functions()._global_mapping["sdpa"]
    groups = getattr(module, "num_key_value_groups", 1)
    if (groups <= 1 or query.shape[2] == 1 or kwargs.get("output_attentions")
            or any(kwargs.get(k) is not None for k in ("position_bias", "softcap", "s_aux", "sinks"))):
        return sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                    is_causal=is_causal, **kwargs)
    mask = attention_mask
    if mask is not None and mask.ndim == 4:
        mask = mask[:, :, :, : key.shape[-2]]
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    causal = bool(mask is None and causal)
    if causal and key.shape[2] > query.shape[2]:  # SDPA's causal mask is aligned top-left
        key, value = key[:, :, : query.shape[2]], value[:, :, : query.shape[2]]
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key.contiguous(), value.contiguous(), attn_mask=mask, dropout_p=dropout, scale=scaling,
        is_causal=causal, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def _attention_functions():
    from transformers.modeling_utils import AttentionInterface

    return AttentionInterface


def _register_gqa_sdpa() -> None:
    _attention_functions().register(GQA_SDPA, _sdpa_gqa)
    if importlib.util.find_spec("transformers.masking_utils") is not None:
        # 4.53+: masks are made per attention implementation, and one without a mask function gets
        # no mask at all; this one takes SDPA's
        from transformers import masking_utils

        if hasattr(masking_utils, "AttentionMaskInterface"):
            masking_utils.AttentionMaskInterface.register(GQA_SDPA, masking_utils.sdpa_mask)


def _set_attention(config, name: str) -> None:
    config._attn_implementation = name  # a property over _attn_implementation_internal on every release


@contextlib.contextmanager
def grouped_query_sdpa(model):
    """A context manager: inside it, ``model`` (a causal LM, PEFT-wrapped or not) attends through
    ``_sdpa_gqa`` where that saves memory and computes the same. It yields None when it switched, or
    the reason it left the model as it was: not SDPA, no grouped-query heads, not on the CPU, or a
    probe forward (two rows, one padded) that does not match SDPA's own logits."""
    inner = model.get_base_model() if callable(getattr(model, "get_base_model", None)) else model
    config = getattr(inner, "config", None)
    reason = _gqa_why_not(inner, config)
    if reason is None:
        _register_gqa_sdpa()
        before = config._attn_implementation
        _set_attention(config, GQA_SDPA)
        reason = _gqa_probe_disagrees(inner, config, before)
        if reason:
            _set_attention(config, before)
    try:
        yield reason
    finally:
        if reason is None:
            _set_attention(config, before)


def _gqa_why_not(model, config) -> str | None:
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return "the model does not attend through SDPA"
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "a sliding window, which a short probe cannot check"
    heads, kv = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    if not heads or not kv or kv >= heads:
        return "no grouped-query attention (as many key/value heads as query heads)"
    param = next(model.parameters(), None)
    if param is None or param.device.type != "cpu":
        return "not on the CPU (on a GPU, SDPA's fused kernels take no mask with shared heads)"
    return None


def _gqa_probe_disagrees(model, config, before: str) -> str | None:
    vocab = getattr(config, "vocab_size", 2)
    ids = torch.randint(min(3, vocab - 1), vocab, (2, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # the second row padded, so the mask path is the one compared
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            got = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            _set_attention(config, before)
            want = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            _set_attention(config, GQA_SDPA)
    finally:
        model.train(was_training)
    from ..reference import probe_mismatch

    keep = mask.bool()
    err = probe_mismatch(got[keep], want[keep])
    return None if err is None else f"a probe forward differs from SDPA's (relative {err:.1e})"
