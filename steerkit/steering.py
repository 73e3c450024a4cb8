"""What every steering path applies, as one object: the vectors cast to each layer's device and dtype,
the strength, and which tokens of the current call to steer.

``patching.Handle`` owns the lifecycle (install, remove); the hooks and the fast paths in
``steerkit.fastpath`` read from a ``Steering`` through its public methods only.
"""
from __future__ import annotations

import torch

from . import hf
from .models import ModelLayout
from .ops import gated_steer
from .strengths import strength_values
from .vectors import Entry, SteeringVectors


def check_tokens(tokens):
    if tokens in ("all", "prompt", "generated"):
        return tokens
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
        return tokens
    raise ValueError(f"tokens must be 'all', 'prompt', 'generated' or a start position (int >= 0), got {tokens!r}")


def check_strength(strength, attributes) -> torch.Tensor:
    """A number, a list of K numbers, ``{attribute: number}`` (``steerkit.strengths``), or a [K] or
    [B,K] floating tensor with real values, as a float32 tensor. ``attributes``: the vectors' names."""
    k = len(attributes)
    if not isinstance(strength, torch.Tensor):
        if not isinstance(strength, (int, float, list, tuple, dict)) or isinstance(strength, bool):
            raise ValueError(f"strength must be a number, a list of {k}, {{attribute: number}}, a [K={k}] tensor or "
                             f"a [B, K={k}] tensor, got a {type(strength).__name__}")
        values = strength_values(strength, attributes)
        return torch.full((k,), values) if isinstance(values, float) else torch.tensor(values)
    if not strength.dtype.is_floating_point:
        raise ValueError(f"strength must be a floating-point tensor, got dtype {strength.dtype} "
                         f"(e.g. torch.tensor([1.0, 0.5]), not torch.tensor([1, 0]))")
    if strength.device.type == "meta":
        raise ValueError("strength is on the meta device (it has no values); pass a tensor on the CPU or the "
                         "model's device")
    if not (strength.shape == (k,) or (strength.dim() == 2 and strength.shape[1] == k)):
        raise ValueError(f"strength must be a number, a list of {k}, {{attribute: number}}, a [K={k}] tensor or a "
                         f"[B, K={k}] tensor, got shape "
                         f"{list(strength.shape)}")
    s = strength.float() if strength.requires_grad else strength.detach().float()
    if not s.requires_grad and not bool(torch.isfinite(s).all()):
        raise ValueError("strength contains NaN or Inf")
    return s


def _param_like(module: torch.nn.Module) -> torch.Tensor:
    p = next(module.parameters(), None)
    if p is None:
        raise ValueError(f"cannot tell the device/dtype of {type(module).__name__}: it has no parameters")
    return p


class Steering:
    """The vectors, the strength and the token policy of one patch, as every path applies them."""

    def __init__(self, vectors: SteeringVectors, layout: ModelLayout, strength=1.0, tokens="all"):
        self.vectors = vectors
        self.tokens = check_tokens(tokens)
        self._device = _param_like(layout.layers[0]).device
        self._strength: torch.Tensor | None = None
        self.set_strength(strength)
        self._token_mask: torch.Tensor | None = None  # [B,T] for the current forward call
        self._prompt_len: torch.Tensor | None = None  # [B] non-pad prompt tokens, set at the prefill
        self._prompt: tuple | None = None  # (input_ids, mask) of that prefill, to recognise uncached continuations
        self._entries: dict[tuple[str, int], Entry] = {}
        self._watchers: list = []  # fn(key, x, strength rows) per steered activation (steerkit.gateview)
        for site, layer in vectors:
            ref = _param_like(layout.layers[layer])
            e = vectors[(site, layer)]
            self._entries[(site, layer)] = Entry(
                e.theta.to(device=ref.device, dtype=ref.dtype),
                None if e.gate_w is None else e.gate_w.to(device=ref.device, dtype=ref.dtype),
                None if e.gate_b is None else e.gate_b.to(device=ref.device, dtype=torch.float32))

    @property
    def norm_preserve(self) -> bool:
        return self.vectors.norm_preserve

    def entry(self, key: tuple[str, int]) -> Entry:
        """θ, w, b of one (site, layer), on that layer's device and in its dtype (b in float32)."""
        return self._entries[key]

    # -- strength ------------------------------------------------------------------------------
    def set_strength(self, strength) -> None:
        s = check_strength(strength, self.vectors.attributes)
        old = self._strength
        if old is not None and not s.requires_grad and not old.requires_grad and old.shape == s.shape:
            # in place: a compiled graph or captured CUDA graph keeps reading this same buffer, so a
            # new strength takes effect without re-tracing or re-capturing
            with torch.no_grad():
                old.copy_(s)
            return
        # moved once here, so the per-call .to(x.device) is a no-op on a single-device model
        self._strength = s.to(self._device)

    def watch(self, fn) -> "_Unwatch":
        """Call ``fn(key, x, strength)`` with every activation ``x`` a path steers at ``key`` (before the
        edit) and the strength it applies to its rows (what ``row_strength`` returns), on every path
        (hook, fused, folded). For looking, not editing; ``.remove()`` on the result stops it."""
        self._watchers.append(fn)
        return _Unwatch(self._watchers, fn)

    def row_strength(self, key: tuple[str, int], x: torch.Tensor) -> torch.Tensor:
        """The strength for the rows of ``x`` ([B,T,D] or [B*T,D]), the activation steered at ``key``: [K],
        or one [K] row per token where strengths differ per sequence or a token policy masks tokens out.
        Every path asks for it once per steered activation, so watchers (``watch``) are told here."""
        s = self._rows(x)
        for fn in self._watchers:
            fn(key, x, s)
        return s

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
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

    def apply(self, key: tuple[str, int], x: torch.Tensor) -> torch.Tensor:
        """``gated_steer`` of the activation ``x`` at ``key``."""
        e = self._entries[key]
        return gated_steer(x, e.theta, e.gate_w, e.gate_b, self.row_strength(key, x),
                           norm_preserve=self.vectors.norm_preserve, check_finite=False)

    # -- token policy --------------------------------------------------------------------------
    def _continues_prompt(self, ids: torch.Tensor, mask: torch.Tensor) -> bool:
        """Whether a call without a cache re-reads the last prompt and the tokens generated after it
        (generation with use_cache=False): its ids and mask start with the prompt's."""
        if self._prompt is None or ids.is_floating_point():
            return False
        prompt, prompt_mask = self._prompt
        n = prompt.shape[1]
        return (ids.shape[0] == prompt.shape[0] and ids.shape[1] > n and ids.device == prompt.device
                and torch.equal(ids[:, :n], prompt) and torch.equal(mask[:, :n], prompt_mask.to(mask.device)))

    def observe_call(self, module, args, kwargs) -> None:
        """A forward pre-hook on the model: which of this call's tokens to steer, from absolute
        positions (the count of non-pad tokens before each one). The tokens already seen come from
        the mask of every token so far, or the KV cache's own length (``hf.past_length``), never from the
        length of this call."""
        x = hf.call_tokens(args, kwargs)
        if x is None:
            raise ValueError(f"token policy {self.tokens!r} needs input_ids or inputs_embeds to find positions")
        b, t = x.shape[0], x.shape[1]
        past = hf.past_length(kwargs, t)
        mask = hf.call_mask(kwargs, past, t)
        if mask is None:  # no mask: nothing is padding
            mask = torch.ones(b, past + t, dtype=torch.long, device=x.device)
        mask = mask.to(torch.long)
        pos = (mask.cumsum(1) - 1)[:, past:]  # [B,T] absolute position of each current token
        real = mask[:, past:] > 0
        fresh = past == 0 and not self._continues_prompt(x, mask)
        if fresh:  # a prefill: this call's tokens are the prompt
            self._prompt_len = mask.sum(1)
            self._prompt = (x, mask) if not x.is_floating_point() else None
        elif self.tokens in ("prompt", "generated") and self._prompt_len is None:
            raise ValueError(f"token policy {self.tokens!r}: this call continues from a KV cache of {past} tokens "
                             "that was filled before the patch, so steerkit does not know where the prompt ended")
        if self.tokens == "prompt":
            keep = torch.ones_like(real) if fresh else pos < self._prompt_len[:, None]
        elif self.tokens == "generated":
            keep = torch.zeros_like(real) if fresh else pos >= self._prompt_len[:, None]
        else:
            keep = pos >= self.tokens
        self._token_mask = keep & real


class _Unwatch:
    def __init__(self, watchers: list, fn):
        self._watchers, self._fn = watchers, fn

    def remove(self) -> None:
        if self._fn in self._watchers:
            self._watchers.remove(self._fn)
