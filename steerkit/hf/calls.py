"""The calling conventions of a forward: what a call carries (the KV cache under whichever name it
came, its length, the mask, the tokens), how to call a model (the cache's keyword, ``cache_position``,
a static cache, the cache a forward returned), the decoder stack inside a causal LM, and a decoder
layer's signature (what it takes and returns, and the arguments that mean more than attention + MLP)."""
from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from .release import transformers_version

# newest name first: transformers 5.24+ calls it ``cache``; 4.54-5.23 ``past_key_values``; the
# decoder layers of 4.50-4.53 ``past_key_value``
CACHE_NAMES = ("cache", "past_key_values", "past_key_value")

# decoder-layer arguments whose presence means the layer does more than attention + MLP, so a forward
# that mirrors "norm, attention, add, norm, MLP, add" would compute something else
CHANGES_THE_MATH = {
    "encoder_hidden_states": "cross-attention to an encoder",
    "encoder_attention_mask": "cross-attention to an encoder",
    "cross_attn_layer_head_mask": "cross-attention to an encoder",
    "layer_head_mask": "per-head masking of the attention output",
    "head_mask": "per-head masking of the attention output",
    "output_router_logits": "a mixture-of-experts router",
    "residual": "a residual carried in from outside the layer",
}


# -- what a call carries ---------------------------------------------------------------------------
def call_cache(kwargs: dict):
    """The KV cache passed to a forward call, under any of its names; None when there is none."""
    for name in CACHE_NAMES:
        cache = kwargs.get(name)
        if cache is not None:
            return cache
    return None


def cache_length(cache) -> int:
    """Tokens already in a KV cache, by the cache's own count. Refuses a cache it cannot read rather
    than guess (a wrong length would steer the wrong tokens)."""
    if cache is None:
        return 0
    if callable(getattr(cache, "get_seq_length", None)):
        return int(cache.get_seq_length())
    if isinstance(cache, (tuple, list)):  # the legacy tuple of (key, value) per layer
        if len(cache) == 0 or cache[0] is None:
            return 0
        return int(cache[0][0].shape[-2])
    raise ValueError(f"cannot read how many tokens a {type(cache).__name__} KV cache holds (no get_seq_length); "
                     "steerkit needs it to find token positions for this token policy")


def past_length(kwargs: dict, tokens: int) -> int:
    """Tokens before the ``tokens`` of this call. From a 2-D attention mask when one is passed (it
    covers every token so far: the HF convention in every release, and known on the host); else from
    ``cache_position`` (4.x passes it); else from the cache's own count (5.24+ passes neither an
    all-ones mask nor cache_position); else 0."""
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        if mask.shape[1] < tokens:
            raise ValueError(f"attention_mask has {mask.shape[1]} columns for a call of {tokens} tokens: expected "
                             "one column for every token so far (cached ones included)")
        return int(mask.shape[1]) - tokens
    pos = kwargs.get("cache_position")
    if pos is not None and pos.numel() > 0:
        return int(pos.reshape(-1)[0])
    return cache_length(call_cache(kwargs))


def call_mask(kwargs: dict, past: int, tokens: int):
    """The [B, past+tokens] mask of a call (1 = a real token, 0 = padding), or None: nothing is padding.
    A 4-D mask (Gemma-2's generate() in 4.5x prepares one, as wide as its static cache) is read from
    its last query row, which sees every earlier real token."""
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() == 2:
        return mask
    if mask.dim() != 4:
        raise ValueError(f"attention_mask: expected a [batch, tokens] or [batch, 1, query, key] mask to find token "
                         f"positions, got shape {list(mask.shape)}")
    if mask.shape[-1] < past + tokens:
        raise ValueError(f"attention_mask: a 4-D mask of {mask.shape[-1]} key columns for {past} cached and "
                         f"{tokens} new tokens")
    row = mask[:, 0, -1, :past + tokens]
    visible = row if row.dtype == torch.bool else (row == 0 if row.is_floating_point() else row != 0)
    return visible.long()


def call_tokens(args: tuple, kwargs: dict):
    """input_ids ([B,T]) or inputs_embeds ([B,T,D]) of a model call, or None."""
    ids = kwargs.get("input_ids", args[0] if args else None)
    return ids if ids is not None else kwargs.get("inputs_embeds")


# -- how to call a model ---------------------------------------------------------------------------
def _forward_params(model):
    """The parameters of ``model.forward`` (name -> inspect.Parameter)."""
    return inspect.signature(type(model).forward).parameters


def cache_kwargs(model, cache) -> dict:
    """``{name: cache}`` under the name ``model.forward`` takes the cache by."""
    params = _forward_params(model)
    for name in CACHE_NAMES:
        if name in params:
            return {name: cache}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):  # a wrapper (PEFT) passing **kwargs on
        return {"cache" if transformers_version() >= (5, 24) else "past_key_values": cache}
    raise ValueError(f"{type(model).__name__}.forward takes no KV cache argument ({', '.join(CACHE_NAMES)})")


def step_kwargs(model, cache, positions) -> dict:
    """Keywords for a forward call that continues ``cache`` at absolute ``positions`` ([T] tensor): the
    cache under the model's name for it, plus ``cache_position`` where the release takes one (4.x;
    from 5.24 a static cache keeps its own position on the device)."""
    kwargs = cache_kwargs(model, cache)
    if "cache_position" in _forward_params(model):
        kwargs["cache_position"] = positions
    return kwargs


def static_cache(model, batch: int, length: int):
    """A static KV cache of ``length`` tokens for ``batch`` sequences (its constructor's keywords moved in 5.x)."""
    from transformers import StaticCache

    try:
        return StaticCache(config=model.config, max_cache_len=length)
    except TypeError:  # the 4.x signature
        p = next(model.parameters())
        return StaticCache(config=model.config, max_batch_size=batch, max_cache_len=length, device=p.device,
                           dtype=p.dtype)


def output_cache(output):
    """The KV cache a forward call returned (``cache`` from transformers 5.24, ``past_key_values`` before)."""
    for name in CACHE_NAMES[:2]:
        if name in output.keys():
            return output[name]
    return None


def base_model(model):
    """The decoder stack inside a causal LM: ``model.base_model``, except where a class declares a
    ``base_model_prefix`` it does not use (Gemma3ForCausalLM before transformers 5 says "language_model"
    and keeps the stack at ``.model``, so ``base_model`` returns the wrapper itself)."""
    base = getattr(model, "base_model", model)
    inner = getattr(model, "model", None)
    if base is model and inner is not None and inner is not model and hasattr(inner, "forward"):
        return inner
    return base


# -- decoder layers --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSignature:
    """What a decoder layer's forward takes and returns, read from its signature."""

    positional: tuple[str, ...]  # names of the parameters after hidden_states that may come positionally
    returns_tuple: bool          # 4.50-4.53 layers return (hidden_states, [attn_weights]); later ones a tensor
    changes_the_math: tuple[str, ...]  # parameters that mean more than attention + MLP (CHANGES_THE_MATH)
    first: str | None            # the first parameter after self (the hidden states)


def layer_signature(layer) -> LayerSignature:
    params = inspect.signature(type(layer).forward).parameters
    names = [n for n in params if n != "self"]
    positional = tuple(n for n in names[1:] if params[n].kind == params[n].POSITIONAL_OR_KEYWORD)
    return LayerSignature(positional=positional, returns_tuple=_returns_tuple(type(layer)),
                          changes_the_math=tuple(n for n in names if n in CHANGES_THE_MATH),
                          first=names[0] if names else None)


def _returns_tuple(cls) -> bool:
    """The decoder layers that return a tuple (4.50-4.53) are the ones whose forward takes
    output_attentions; a subclass that hides it behind **kwargs returns what its base returns."""
    return any("output_attentions" in inspect.signature(c.__dict__["forward"]).parameters
               for c in cls.__mro__ if callable(c.__dict__.get("forward")))


def wants_attentions(kwargs: dict) -> bool:
    """Whether a 4.50-4.53 layer call asked for its attention weights back."""
    return bool(kwargs.get("output_attentions"))
