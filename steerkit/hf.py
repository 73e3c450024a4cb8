"""Every Hugging Face calling convention steerkit relies on, and nothing else.

transformers renames keywords between releases (``past_key_value`` → ``past_key_values`` → ``cache``;
``torch_dtype`` → ``dtype``; ``cache_position`` passed, then dropped; an all-ones ``attention_mask``
passed, then omitted). Every other module asks this one, so a release that moves a name is fixed
here, once. Nothing outside this module reads an HF keyword or output attribute by name.

What a forward call tells us (the ``kwargs`` of a forward pre-hook):
  ``call_cache``       the KV cache under whichever name it came
  ``cache_length``     how many tokens it already holds (its own count, never the call's shape)
  ``past_length``      the same for a call: mask width, else ``cache_position``, else the cache
  ``call_mask``        which tokens so far are real (not padding), or None: none are
  ``call_tokens``      input_ids or inputs_embeds, wherever they were passed
How to call a model: ``cache_kwargs`` (the cache under the name this model's forward takes),
``step_kwargs`` (that, plus ``cache_position`` where the release takes it),
``output_cache`` (the cache a forward returned), ``dtype_kwargs`` for ``from_pretrained``;
``load_model`` / ``save_model`` for checkpoints (HF folders and GGUF files) on every release,
``open_checkpoint`` for its config and tokenizer before the weights;
``chat_prompt`` for the chat template. Decoder-layer forwards: ``layer_signature``. Attention:
``grouped_query_sdpa`` (shared key/value heads inside SDPA while focus training runs on the CPU).
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

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


def transformers_version() -> tuple[int, int]:
    """(major, minor) of the installed transformers; (0, 0) when it is missing or unreadable."""
    try:
        major, minor = (metadata.version("transformers").split(".") + ["0"])[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except (metadata.PackageNotFoundError, ValueError):
        return 0, 0


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


def dtype_kwargs(dtype) -> dict:
    """The ``from_pretrained`` keyword for a dtype (``torch_dtype`` before transformers 4.56)."""
    if dtype is None:
        return {}
    if isinstance(dtype, str):  # a name ("bfloat16"), as the CLI and a saved recipe give it
        import torch

        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"dtype: expected a torch dtype's name (float32, bfloat16, float16), got {dtype!r}")
        dtype = getattr(torch, dtype)
    return {"dtype" if transformers_version() >= (4, 56) else "torch_dtype": dtype}


GGUF_NEEDS = ("gguf", "accelerate")  # what transformers needs to dequantize a GGUF checkpoint


def checkpoint_files(path: str | Path, what: str = "--model") -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of a local checkpoint given as a Hugging Face folder, a ``.gguf``
    file, or a folder holding exactly one ``.gguf`` file. Never downloads anything."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return path, None
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return path, ggufs[0]
        if ggufs:
            raise ValueError(f"{what}: {path} holds {len(ggufs)} .gguf files ({', '.join(ggufs)}); name one of them")
    raise FileNotFoundError(f"{what}: no local model at {path} (expected a Hugging Face folder with config.json, a "
                            ".gguf file, or a folder holding one); steerkit loads local checkpoints only and never "
                            "downloads")


@dataclass
class Checkpoint:
    """A local checkpoint opened without its weights: its config and tokenizer (seconds), so what can
    be refused from them is refused before ``load()`` reads the weights (a minute for a GGUF)."""

    folder: Path
    gguf: str | None
    config: object
    tokenizer: object

    @property
    def model_type(self) -> str | None:
        return getattr(self.config, "model_type", None)

    def shape(self) -> dict:
        """What the config says of the decoder stack: layer count and the width of the residual stream
        (the block_out, attn_out and mlp_out sites); values it does not give are left out."""
        text = self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config
        out = {}
        for key, name in (("num_layers", "num_hidden_layers"), ("hidden_size", "hidden_size")):
            value = getattr(text, name, None)
            if isinstance(value, int):
                out[key] = value
        return out

    def load(self, dtype=None, device: str | None = None):
        """The causal LM in eval mode (see ``load_model``)."""
        from transformers import AutoModelForCausalLM

        _quiet_in_logs()
        if self.gguf is not None:
            model = _plain(AutoModelForCausalLM.from_pretrained(str(self.folder), local_files_only=True,
                                                                gguf_file=self.gguf, **dtype_kwargs(dtype)))
        else:
            model = AutoModelForCausalLM.from_pretrained(str(self.folder), config=self.config, local_files_only=True,
                                                         **dtype_kwargs(dtype))
        if device:
            model = model.to(device)
        return model.eval()


def _quiet_in_logs() -> None:
    import sys

    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():  # a GGUF's per-tensor bars would write hundreds of redraws into a log
        hf_logging.disable_progress_bar()


def open_checkpoint(path: str | Path, what: str = "--model") -> Checkpoint:
    """A local checkpoint (as ``load_model`` takes it) with its config and tokenizer read, not its weights."""
    from .known_models import resolve

    folder, gguf = checkpoint_files(resolve(path) or path, what)
    from transformers import AutoConfig

    _quiet_in_logs()
    if gguf is not None:
        missing = [m for m in GGUF_NEEDS if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"{what}: loading {gguf} needs {' and '.join(missing)} (pip install {' '.join(GGUF_NEEDS)})")
        source = dict(gguf_file=gguf)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, **source)
        tok = _tokenizer(folder, source)
        _gguf_bos(tok, folder / gguf)
    else:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        _restore_rope_theta(config, folder)
        tok = _tokenizer(folder, {})
    return Checkpoint(folder, gguf, config, tok)


def load_model(path: str | Path, dtype=None, device: str | None = None, what: str = "--model"):
    """(causal LM in eval mode, tokenizer) from a local checkpoint: a Hugging Face folder, a ``.gguf``
    file (dequantized on load), a folder holding one, or a short name of ``steerkit.known_models``
    (``smollm2``); never downloads anything.

    Handled here, on every supported release: a GGUF-loaded model becomes a plain one (transformers
    keeps it marked as quantized, which refuses ``save_pretrained`` and trips PEFT); a folder written
    by transformers 5 (``rope_parameters`` and no ``rope_theta``, tokenizer class ``TokenizersBackend``)
    loads on 4.x as the same model rather than with the default rope theta; and the tokenizer never
    returns ``token_type_ids``, which ``generate()`` refuses."""
    ckpt = open_checkpoint(path, what)
    return ckpt.load(dtype, device), ckpt.tokenizer


def _tokenizer(folder: Path, source: dict):
    """The checkpoint's tokenizer, without ``token_type_ids`` in what it returns. A tokenizer saved by
    transformers 5 names the class ``TokenizersBackend``, which 4.x does not know: its
    ``tokenizer.json`` is read by the fast tokenizer class those releases have."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **source)
    except ValueError as err:
        if "TokenizersBackend" not in str(err) or not (folder / "tokenizer.json").is_file():
            raise
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok


def _gguf_bos(tok, file: Path) -> None:
    """A GGUF file says whether its tokenizer starts a text with BOS (``tokenizer.ggml.add_bos_token``);
    4.x builds a Llama tokenizer that adds one whatever the file says (SmolLM2's says no), so the same
    prompt became different tokens than on transformers 5."""
    from gguf import GGUFReader

    field = GGUFReader(str(file)).fields.get("tokenizer.ggml.add_bos_token")
    if field is None or not field.data:
        return
    wanted = bool(field.parts[field.data[0]][0])
    if getattr(tok, "add_bos_token", wanted) != wanted:
        tok.add_bos_token = wanted


def _restore_rope_theta(config, folder: Path) -> None:
    """transformers 5 writes the rope settings as ``rope_parameters`` only; 4.x reads ``rope_theta``
    and, finding none, silently uses the default 10000 (SmolLM2's is 100000)."""
    if transformers_version() >= (5, 0):
        return
    for key, value in _legacy_rope(json.loads((folder / "config.json").read_text())).items():
        setattr(config, key, value)


def _legacy_rope(raw: dict) -> dict:
    """The 4.x keys (``rope_theta``, and ``rope_scaling`` for a non-default rope) that a config dict
    written by transformers 5 holds only inside ``rope_parameters``; {} when it has them already."""
    params = raw.get("rope_parameters")
    if "rope_theta" in raw or not isinstance(params, dict) or "rope_theta" not in params:
        return {}
    keys = {"rope_theta": params["rope_theta"]}
    if params.get("rope_type", "default") != "default" and "rope_scaling" not in raw:
        keys["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    return keys


def _plain(model):
    """A GGUF-loaded model, dequantized, as an ordinary model of its class: transformers keeps a
    quantizer on it that refuses ``save_pretrained``. The weights are moved, not copied."""
    if getattr(model, "hf_quantizer", None) is None and getattr(model.config, "quantization_config", None) is None:
        return model
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), assign=True)
    # buffers outside the state dict (rope's inv_freq) are still on meta: take the loaded model's
    for name, buf in model.named_buffers():
        owner, _, key = name.rpartition(".")
        plain.get_submodule(owner)._buffers[key] = buf
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.to(next(model.parameters()).dtype)


def save_model(model, tokenizer, folder: str | Path) -> Path:
    """Writes ``model`` and ``tokenizer`` as a Hugging Face folder that every supported transformers
    release loads as the same model: the rope theta also at the top level of ``config.json`` (4.x reads
    only that) and a tokenizer class 4.x knows."""
    folder = Path(folder)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    cfg_path = folder / "config.json"
    raw = json.loads(cfg_path.read_text())
    legacy = _legacy_rope(raw)
    if legacy:
        cfg_path.write_text(json.dumps({**raw, **legacy}, indent=2))
    tok_path = folder / "tokenizer_config.json"
    if tok_path.is_file() and (folder / "tokenizer.json").is_file():
        raw = json.loads(tok_path.read_text())
        if raw.get("tokenizer_class") == "TokenizersBackend":
            raw["tokenizer_class"] = "PreTrainedTokenizerFast"
            tok_path.write_text(json.dumps(raw, indent=2))
    return folder


def base_model(model):
    """The decoder stack inside a causal LM: ``model.base_model``, except where a class declares a
    ``base_model_prefix`` it does not use (Gemma3ForCausalLM before transformers 5 says "language_model"
    and keeps the stack at ``.model``, so ``base_model`` returns the wrapper itself)."""
    base = getattr(model, "base_model", model)
    inner = getattr(model, "model", None)
    if base is model and inner is not None and inner is not model and hasattr(inner, "forward"):
        return inner
    return base


def check_chat(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("--chat: this model's tokenizer has no chat template")


def chat_prompt(tokenizer, text: str) -> str:
    """``text`` as one user turn in the tokenizer's chat template, ready for the assistant's answer."""
    check_chat(tokenizer)
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def reads_packed_sequences() -> bool:
    """Whether this release finds packed sequences from restarting position_ids (no mask), so a
    padding-free batch attends within each sequence (transformers 4.53+)."""
    try:
        import transformers.masking_utils as mu
    except ImportError:
        return False
    return hasattr(mu, "find_packed_sequence_indices")


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
    from .reference import probe_mismatch

    keep = mask.bool()
    err = probe_mismatch(got[keep], want[keep])
    return None if err is None else f"a probe forward differs from SDPA's (relative {err:.1e})"
