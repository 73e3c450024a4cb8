"""The model side: forward hooks on a vLLM decoder stack that call the bank at each steered site.

A pre-norm family's decoder layer in vLLM returns ``(hidden, residual)`` and the next layer's fused
add-norm sums them, so the residual stream after layer L (steerkit's ``block_out``) is ``hidden + residual``
("pair" in ``hooks.ARCHS``); GPT-2's and OPT's return the stream itself ("stream"), steered as it is.
For a pair, the hook steers
that sum x and hands the next layer ``hidden + (steer(x) - x)``: a token with strength 0 gets exactly
``hidden`` back (bit-identical to vLLM without the plugin in every dtype); a steered token's stream
equals steer(x) up to one rounding of the add.

``attn_heads`` (o_proj's input) is sharded across tensor-parallel ranks, and a gate or a preserved
norm needs the whole row, so under tensor parallelism the hook all-gathers the row, steers it
exactly, and keeps this rank's slice. ``attn_out`` and ``mlp_out`` are o_proj's and down_proj's
outputs after their all-reduce, whole on every rank.
"""
from __future__ import annotations

import torch


def submodule(obj, path: str):
    """The module at a dotted attribute path of ``obj`` (a layout of ``hooks.ARCHS``)."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def install(bank, layers, paths: dict, tp: tuple) -> list:
    """Registers the hooks; returns their handles."""
    world, rank, all_gather = tp
    handles = []
    for site, layer in bank.keys():
        module = layers[layer]
        key = (site, layer)
        if site == "block_out":
            hook = _block_out_pair if paths["block_out"] == "pair" else _block_out_stream
            handles.append(module.register_forward_hook(hook(bank, key)))
        elif site == "attn_heads":
            handles.append(submodule(module, paths["attn_proj"]).register_forward_pre_hook(
                _attn_heads(bank, key, world, rank, all_gather)))
        else:
            proj = submodule(module, paths["attn_proj"] if site == "attn_out" else paths["mlp_proj"])
            handles.append(proj.register_forward_hook(_projection_out(bank, key)))
    return handles


def _block_out_stream(bank, key):
    def hook(module, args, output):
        if not isinstance(output, torch.Tensor):
            raise RuntimeError(f"steerkit: {type(module).__name__} returned {type(output).__name__}, not the "
                               "residual stream; block_out cannot be steered on this model")
        return bank.apply(key, output)
    return hook


def _block_out_pair(bank, key):
    def hook(module, args, output):
        if not (isinstance(output, tuple) and len(output) == 2):
            raise RuntimeError(f"steerkit: {type(module).__name__} returned {type(output).__name__}, not "
                               "(hidden, residual); block_out cannot be steered on this model")
        hidden, residual = output
        x = hidden + residual
        return hidden + (bank.apply(key, x) - x), residual
    return hook


def _attn_heads(bank, key, world, rank, all_gather):
    def hook(module, args):
        x = args[0]
        if world == 1:
            return (bank.apply(key, x),) + tuple(args[1:])
        full = bank.apply(key, all_gather(x, -1))
        return (full.chunk(world, dim=-1)[rank].contiguous(),) + tuple(args[1:])
    return hook


def _projection_out(bank, key):
    def hook(module, args, output):
        # vLLM's parallel linear layers return (output, output_bias)
        if isinstance(output, tuple):
            return (bank.apply(key, output[0]),) + tuple(output[1:])
        return bank.apply(key, output)
    return hook
