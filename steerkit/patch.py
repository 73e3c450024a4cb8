"""Drop-in steering of an existing Hugging Face model instance: ``patch()``, ``steer()``, ``Handle``.

Each (site, layer) of a ``SteeringVectors`` is steered on one of three paths (``steerkit.fastpath``):
a fused decoder-layer forward (attn_out, mlp_out), o_proj with the steer folded through it
(attn_heads), or a hook on a module of the instance (``steerkit.sites``). Fast paths replace
``forward`` on the instance only; ``Handle.paths`` says which path each key took and why.

Everything is validated before the first hook is registered, so a failed patch leaves the model as
it was; ``Handle.remove()`` removes exactly the hooks it added.
"""
from __future__ import annotations

import functools
import logging

import torch
from torch import nn

from . import fastpath, models
from .ops import gated_steer
from .sites import register_site_hook
from .vectors import SteeringVectors

log = logging.getLogger("steerkit")
_ATTR = "_steerkit_patched"  # set of (site, layer) currently steered on a model instance


class Handle:
    """A live patch: change its strength with ``set_strength``, undo it with ``remove``. Also a
    context manager that removes the patch on exit."""

    def __init__(self, model: nn.Module, vectors: SteeringVectors, layout: models.ModelLayout, tokens="all"):
        self.tokens = _check_tokens(tokens)
        self._token_mask: torch.Tensor | None = None  # [B,T] for the current forward call
        self._prompt_len: torch.Tensor | None = None  # [B] non-pad prompt tokens, set at the prefill
        self.model = model
        self.vectors = vectors
        self.layout = layout
        self._hooks: list = []
        self._keys: list[tuple[str, int]] = []
        self._strength: torch.Tensor | None = None
        self._cast: dict = {}  # vectors cast to each patched layer's device and dtype
        self.paths: dict[tuple[str, int], tuple[str, str]] = {}  # key -> (hook|fused|folded, why)

    # -- strength ------------------------------------------------------------------------------
    def set_strength(self, strength) -> None:
        """A float, a [K] tensor (one per attribute) or a [B,K] tensor (a mix per sequence)."""
        k = self.vectors.num_attributes
        if isinstance(strength, (int, float)) and not isinstance(strength, bool):
            s = torch.full((k,), float(strength))
        elif isinstance(strength, torch.Tensor) and strength.dtype.is_floating_point and (
                strength.shape == (k,) or (strength.dim() == 2 and strength.shape[1] == k)):
            s = strength.detach().float() if not strength.requires_grad else strength.float()
        else:
            raise ValueError(f"strength must be a float, a [K={k}] tensor or a [B, K={k}] tensor, got "
                             f"{getattr(strength, 'shape', strength)!r}")
        if not s.requires_grad and not bool(torch.isfinite(s).all()):
            raise ValueError("strength contains NaN or Inf")
        old = self._strength
        if old is not None and not s.requires_grad and not old.requires_grad and old.shape == s.shape:
            # in place: a compiled graph or captured CUDA graph keeps reading this same buffer, so a
            # new strength takes effect without re-tracing or re-capturing
            with torch.no_grad():
                old.copy_(s)
            return
        # moved once here, so the hooks' per-call .to(x.device) is a no-op on a single-device model
        self._strength = s.to(_param_like(self.layout.layers[0]).device)

    def _row_strength(self, x: torch.Tensor) -> torch.Tensor:
        s = self._strength.to(x.device)
        if self._token_mask is not None:
            m = self._token_mask.to(device=x.device, dtype=s.dtype)  # [B,T]
            s = (s[None, None, :] if s.dim() == 1 else s[:, None, :]) * m[:, :, None]
            return s if x.dim() == 3 else s.reshape(-1, s.shape[-1])
        if s.dim() == 1:
            return s
        b = s.shape[0]
        if x.dim() == 3 and x.shape[0] == b:
            return s[:, None, :].expand(b, x.shape[1], s.shape[1])
        if x.dim() == 2 and x.shape[0] % b == 0:  # [B*T, D], batch-major (OPT flattens before its MLP)
            return s.repeat_interleave(x.shape[0] // b, dim=0)
        raise ValueError(f"a per-sequence strength [B={b}, K] needs a batch of {b} sequences, "
                         f"got activations of shape {list(x.shape)}")

    def _apply(self, key: tuple[str, int], x: torch.Tensor) -> torch.Tensor:
        e = self._cast[key]
        return gated_steer(x, e.theta, e.gate_w, e.gate_b, self._row_strength(x),
                           norm_preserve=self.vectors.norm_preserve, check_finite=False)

    # -- lifecycle -----------------------------------------------------------------------------
    def _install(self, replace: bool, fused) -> None:
        patched = getattr(self.model, _ATTR, None) or {}
        for key in self.vectors:
            if key in patched and not replace:
                raise ValueError(f"{key[0]} layer {key[1]} is already steered on this model; remove that "
                                 "handle first or pass replace=True")
        for key in self.vectors:
            if key in patched:  # only with replace=True: otherwise the loop above raised
                patched[key].remove_keys([key])
        self.paths = fastpath.plan(self.layout, list(self.vectors), fused)
        if fused is True:
            _require_fast(self.paths)  # before anything is installed
        setattr(self.model, _ATTR, patched)
        if self.tokens != "all":
            self._hooks.append((None, self.model.register_forward_pre_hook(self._positions_hook, with_kwargs=True,
                                                                          prepend=True)))
        layers: dict[int, fastpath.FusedLayer] = {}
        for key in self.vectors:
            path, why = self.paths[key]
            if path == fastpath.FUSED:
                if key[1] not in layers:
                    layers[key[1]] = fastpath.FusedLayer(self, self.layout, key[1])
                h = layers[key[1]].add(key)
            elif path == fastpath.FOLDED:
                h = fastpath.FoldedProjection(self, key, self.layout.attn_out_proj(key[1]))
            else:
                h = register_site_hook(self.layout, key[0], key[1], functools.partial(self._apply, key))
            self._hooks.append((key, h))
            patched[key] = self
            log.debug("steerkit: %s layer %d -> %s (%s)", key[0], key[1], path, why)

    def describe(self) -> str:
        """One line per steered (site, layer): the path it takes and why."""
        return "\n".join(f"{site:<10} layer {layer:<3} {path:<6}  {why}"
                         for (site, layer), (path, why) in sorted(self.paths.items(), key=lambda kv: (kv[0][1], kv[0][0])))

    def _positions_hook(self, module, args, kwargs):
        """Per call: which of the current tokens to steer, from absolute positions (count of non-pad
        tokens before each one), never from the length of the call. Host-known shapes only: the
        cache length is the attention mask's width minus this call's length."""
        ids = kwargs.get("input_ids", args[0] if args else None)
        x = ids if ids is not None else kwargs.get("inputs_embeds")
        if x is None:
            raise ValueError(f"token policy {self.tokens!r} needs input_ids or inputs_embeds to find positions")
        b, t = x.shape[0], x.shape[1]
        mask = kwargs.get("attention_mask")
        if mask is None:
            past = _past_length(kwargs)
            mask = torch.ones(b, past + t, dtype=torch.long, device=x.device)
        mask = mask.to(torch.long)
        past = mask.shape[1] - t
        pos = (mask.cumsum(1) - 1)[:, past:]  # [B,T] absolute position of each current token
        real = mask[:, past:] > 0
        if past == 0:  # the prefill: this call's tokens are the prompt
            self._prompt_len = mask.sum(1)
        if self.tokens == "prompt":
            keep = pos < self._prompt_len[:, None] if past > 0 else torch.ones_like(real)
        elif self.tokens == "generated":
            keep = pos >= self._prompt_len[:, None] if past > 0 else torch.zeros_like(real)
        else:
            keep = pos >= self.tokens
        self._token_mask = keep & real

    def remove_keys(self, keys) -> None:
        """Removes the hooks of these (site, layer) keys; the positions hook goes with the last one."""
        patched = getattr(self.model, _ATTR, {})
        keep = []
        for key, h in self._hooks:
            if key is not None and key in keys:
                h.remove()
                if patched.get(key) is self:
                    del patched[key]
            else:
                keep.append((key, h))
        if all(key is None for key, _ in keep):
            for _, h in keep:
                h.remove()
            keep = []
        self._hooks = keep

    def remove(self) -> None:
        """Restores the model exactly (idempotent)."""
        self.remove_keys({k for k, _ in self._hooks if k is not None})

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _check_tokens(tokens):
    if tokens in ("all", "prompt", "generated"):
        return tokens
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
        return tokens
    raise ValueError(f"tokens must be 'all', 'prompt', 'generated' or a start position (int >= 0), got {tokens!r}")


def _require_fast(paths) -> None:
    slow = [f"{site} layer {layer}: {why}" for (site, layer), (path, why) in paths.items() if path == fastpath.HOOK]
    if slow:
        raise ValueError("fused=True, but these cannot take a fast path:\n  " + "\n  ".join(slow))


def _past_length(kwargs) -> int:
    cache = kwargs.get("past_key_values")
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    return int(cache[0][0].shape[-2])  # legacy tuple cache


def _validate(vectors: SteeringVectors, layout: models.ModelLayout, model: nn.Module) -> None:
    made_for = vectors.provenance.get("model_type")
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if made_for is not None and model_type is not None and made_for != model_type:
        raise ValueError(f"these vectors were made for a {made_for!r} model (provenance model_type) but this model "
                         f"is {model_type!r}")
    for site, layer in vectors:
        if layer >= layout.num_layers:
            raise ValueError(f"vectors for {site} layer {layer}, but this {layout.spec.family} model has "
                             f"{layout.num_layers} decoder layers (0..{layout.num_layers - 1})")
        d, want = vectors[(site, layer)].hidden_size, layout.site_size(site)
        if d != want:
            raise ValueError(f"vectors for {site} layer {layer} have D={d}, but this {layout.spec.family} model's "
                             f"{site} activations have width {want}: were they made for another model?")


def _param_like(module: nn.Module) -> torch.Tensor:
    p = next(module.parameters(), None)
    if p is None:
        raise ValueError(f"cannot tell the device/dtype of {type(module).__name__}: it has no parameters")
    return p


def patch(model: nn.Module, vectors: SteeringVectors, strength=1.0, tokens="all",
          arch: models.ArchSpec | None = None, replace: bool = False, fused: bool | str = "auto") -> Handle:
    """Steers ``model`` in place with ``vectors`` until ``handle.remove()``.

    ``strength``: a float, a [K] tensor, or a [B,K] tensor (a different mix for each sequence of a
    batch of B). ``tokens``: which tokens to steer, "all", "prompt", "generated" (tokens after the
    prompt of the first call, under KV-cached generation) or an int p (absolute positions >= p,
    counted over non-pad tokens, so left and right padding agree). ``arch``: module paths for a
    family not in the registry. ``fused``: "auto" takes the fast path for each (site, layer) where
    one applies (see ``steerkit.fastpath``), False uses hooks everywhere, True raises unless every
    key gets a fast path. ``handle.describe()`` says which path each key took.
    """
    if not isinstance(vectors, SteeringVectors):
        raise ValueError(f"vectors must be a steerkit.SteeringVectors, got {type(vectors).__name__}")
    if not (fused == "auto" or isinstance(fused, bool)):
        raise ValueError(f"fused must be 'auto', True or False, got {fused!r}")
    layout = models.resolve(model, arch)
    _validate(vectors, layout, model)
    handle = Handle(model, vectors, layout, tokens)
    handle.set_strength(strength)
    for site, layer in vectors:
        ref = _param_like(layout.layers[layer])
        e = vectors[(site, layer)]
        handle._cast[(site, layer)] = type(e)(
            e.theta.to(device=ref.device, dtype=ref.dtype),
            None if e.gate_w is None else e.gate_w.to(device=ref.device, dtype=ref.dtype),
            None if e.gate_b is None else e.gate_b.to(device=ref.device, dtype=torch.float32),
        )
    handle._install(replace, fused)
    return handle


def steer(model: nn.Module, vectors: SteeringVectors, strength=1.0, tokens="all",
          arch: models.ArchSpec | None = None, replace: bool = False, fused: bool | str = "auto") -> Handle:
    """``with steerkit.steer(model, vecs, strength=...): ...``: a patch removed when the block ends."""
    return patch(model, vectors, strength=strength, tokens=tokens, arch=arch, replace=replace, fused=fused)
