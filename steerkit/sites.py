"""Where each site's activation lives in a decoder layer, and one hook that reads or edits it.

Steering (``patch``) and activation collection (``mat.collect_activations``) both go through
``register_site_hook``, so vectors are always learned at exactly the place they are applied:

  attn_heads  forward-pre-hook on the attention output projection (its input)
  attn_out    forward hook on the attention output projection (its output)
  mlp_out     forward hook on the MLP output projection (its output)
  block_out   forward hook on the decoder layer (the residual stream it returns)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # this module stays importable without torch: the CLI reads SITES from it
    import torch

    from .models import ModelLayout

SITES = ("attn_heads", "attn_out", "mlp_out", "block_out")

# edit(x) gets the site's activation ([B,T,D], or [B*T,D] where a family flattens) and returns the
# tensor to use instead, or None to leave it as it is.
Edit = Callable[["torch.Tensor"], Optional["torch.Tensor"]]


def register_site_hook(layout: "ModelLayout", site: str, layer: int, edit: Edit):
    """One hook at (site, layer); returns its removable handle. ``prepend=True``: it runs before hooks
    already on the module, e.g. transformers 5's hidden-state recorder on each decoder layer, so
    ``hidden_states[L+1]`` shows the edited residual stream."""
    if site == "attn_heads":
        def pre_hook(module, args):
            new = edit(args[0])
            return None if new is None else (new,) + tuple(args[1:])
        return layout.attn_out_proj(layer).register_forward_pre_hook(pre_hook, prepend=True)

    if site in ("attn_out", "mlp_out"):
        def out_hook(module, args, output):
            return edit(output)
        proj = layout.attn_out_proj(layer) if site == "attn_out" else layout.mlp_out_proj(layer)
        return proj.register_forward_hook(out_hook, prepend=True)

    if site == "block_out":
        def block_hook(module, args, output):
            if isinstance(output, tuple):
                new = edit(output[0])
                return None if new is None else (new,) + output[1:]
            return edit(output)
        return layout.layers[layer].register_forward_hook(block_hook, prepend=True)

    raise ValueError(f"unknown site {site!r}; expected attn_heads, attn_out, mlp_out or block_out")
