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

from torch import nn

from . import fastpath, models
from .sites import register_site_hook
from .steering import Steering
from .vectors import SteeringVectors

log = logging.getLogger("steerkit")
_ATTR = "_steerkit_patched"  # set of (site, layer) currently steered on a model instance


class Handle:
    """A live patch: change its strength with ``set_strength``, undo it with ``remove``. Also a
    context manager that removes the patch on exit. What is applied lives in ``self.steering``."""

    def __init__(self, model: nn.Module, steering: Steering, layout: models.ModelLayout):
        self.model = model
        self.steering = steering
        self.vectors = steering.vectors
        self.layout = layout
        self._hooks: list = []
        self.paths: dict[tuple[str, int], tuple[str, str]] = {}  # key -> (hook|fused|folded, why)

    @property
    def tokens(self):
        return self.steering.tokens

    def set_strength(self, strength) -> None:
        """A number, a list of K numbers or ``{attribute: number}`` (attributes left out are 0), a [K]
        tensor (one per attribute) or a [B,K] tensor (a mix per sequence)."""
        self.steering.set_strength(strength)

    # -- lifecycle -----------------------------------------------------------------------------
    def _install(self, replace: bool, fused) -> None:
        """Plans and checks everything first; only then removes what this patch replaces and installs,
        so a refused call leaves the model, and any steering already on it, exactly as they were."""
        patched = getattr(self.model, _ATTR, None) or {}
        replaced = [key for key in self.vectors if key in patched]
        if replaced and not replace:
            site, layer = replaced[0]
            raise ValueError(f"{site} layer {layer} is already steered on this model; remove that handle first or "
                             "pass replace=True")
        self.paths = fastpath.plan(self.layout, list(self.vectors), fused, released=set(replaced))
        if fused is True:
            _require_fast(self.paths)
        # nothing was changed above this line
        for key in replaced:
            patched[key].remove_keys([key])
        setattr(self.model, _ATTR, patched)
        s = self.steering
        if s.tokens != "all":
            self._hooks.append((None, self.model.register_forward_pre_hook(s.observe_call, with_kwargs=True,
                                                                          prepend=True)))
        layers: dict[int, fastpath.FusedLayer] = {}
        for key in self.vectors:
            path, why = self.paths[key]
            if path == fastpath.FUSED:
                if key[1] not in layers:
                    layers[key[1]] = fastpath.FusedLayer(s, self.layout, key[1])
                h = layers[key[1]].add(key)
            elif path == fastpath.FOLDED:
                h = fastpath.FoldedProjection(s, key, self.layout.attn_out_proj(key[1]))
            else:
                h = register_site_hook(self.layout, key[0], key[1], functools.partial(s.apply, key))
            self._hooks.append((key, h))
            patched[key] = self
            log.debug("steerkit: %s layer %d -> %s (%s)", key[0], key[1], path, why)

    def describe(self) -> str:
        """One line per steered (site, layer): the path it takes and why."""
        return "\n".join(f"{site:<10} layer {layer:<3} {path:<6}  {why}"
                         for (site, layer), (path, why) in sorted(self.paths.items(), key=lambda kv: (kv[0][1], kv[0][0])))

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


def _require_fast(paths) -> None:
    slow = [f"{site} layer {layer}: {why}" for (site, layer), (path, why) in paths.items() if path == fastpath.HOOK]
    if slow:
        raise ValueError("fused=True, but these cannot take a fast path:\n  " + "\n  ".join(slow))


def check_fit(vectors: SteeringVectors, model_type: str | None, num_layers: int | None, family: str,
              site_size=lambda site: None) -> None:
    """The vectors fit a model of this type and depth, whose ``site``'s activations have width
    ``site_size(site)`` (None: not known, not checked). Used on a loaded model and, from its config
    alone, before the weights load."""
    made_for = vectors.provenance.get("model_type")
    if made_for is not None and model_type is not None and made_for != model_type:
        raise ValueError(f"these vectors were made for a {made_for!r} model (provenance model_type) but this model "
                         f"is {model_type!r}")
    for site, layer in vectors:
        if num_layers is not None and layer >= num_layers:
            raise ValueError(f"vectors for {site} layer {layer}, but this {family} model has "
                             f"{num_layers} decoder layers (0..{num_layers - 1})")
        d, want = vectors[(site, layer)].hidden_size, site_size(site)
        if want is not None and d != want:
            raise ValueError(f"vectors for {site} layer {layer} have D={d}, but this {family} model's "
                             f"{site} activations have width {want}: were they made for another model?")


def _validate(vectors: SteeringVectors, layout: models.ModelLayout, model: nn.Module) -> None:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    check_fit(vectors, model_type, layout.num_layers, layout.spec.family, layout.site_size)


def patch(model: nn.Module, vectors: SteeringVectors, strength=1.0, tokens="all",
          arch: models.ArchSpec | None = None, replace: bool = False, fused: bool | str = "auto") -> Handle:
    """Steers ``model`` in place with ``vectors`` until ``handle.remove()``.

    ``strength``: a number for every attribute, a list of K numbers, ``{attribute: number}`` (those
    left out are 0; an unknown name is refused), a [K] tensor, or a [B,K] tensor (a different mix for
    each sequence of a batch of B). ``tokens``: which tokens to steer, "all", "prompt", "generated" (tokens after the
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
    handle = Handle(model, Steering(vectors, layout, strength, tokens), layout)
    handle._install(replace, fused)
    return handle


def steer(model: nn.Module, vectors: SteeringVectors, strength=1.0, tokens="all",
          arch: models.ArchSpec | None = None, replace: bool = False, fused: bool | str = "auto") -> Handle:
    """``with steerkit.steer(model, vecs, strength=...): ...``: a patch removed when the block ends."""
    return patch(model, vectors, strength=strength, tokens=tokens, arch=arch, replace=replace, fused=fused)


def check_checkpoint(vectors: SteeringVectors, checkpoint) -> None:
    """What ``patch`` would refuse that the checkpoint's config already tells (model type, layer count,
    residual width: every site but attn_heads), before its weights load (``hf.open_checkpoint``)."""
    shape = checkpoint.shape()
    width = shape.get("hidden_size")
    check_fit(vectors, checkpoint.model_type, shape.get("num_layers"), checkpoint.model_type or "this",
              lambda site: None if site == "attn_heads" else width)
