"""steerkit's vLLM plugin: per-request gated multi-attribute steering in a vLLM engine, no fork.

``pip install "steerkit[vllm]"`` registers ``register`` under the ``vllm.general_plugins`` entry point;
vLLM calls it in every process. Steering sets load at engine start::

    LLM(model=..., additional_config={"steerkit": {"vectors": {"NAME": "path.safetensors"}}})

and a request picks one with flat keys, offline or over HTTP (``vllm_xargs``)::

    SamplingParams(extra_args={"steerkit_vectors": "NAME", "steerkit_strength": [1.0, 0.0],
                               "steerkit_tokens": "all"})

A request without these keys is untouched. An engine started with room for more
(``{"steerkit": {"room": {"places": ["block_out:12"]}}}``) loads and unloads sets while it serves
(``runtime``: ``load_set(llm, NAME, PATH)`` offline, ``POST /v1/steerkit/load_set`` over HTTP).
See ``requests`` (the keys and the configuration), ``bank`` (the stacked sets and per-token
strengths), ``registry`` (which copy of a set a request is steered by), ``model_hooks`` (the sites) and
``hooks`` (every vLLM name the plugin uses).
"""
from .requests import MAX_COLUMNS, MAX_SETS, PluginConfig, RequestSteering, Room, parse_request
from .runtime import load_set, steering_sets, unload_set


def register() -> None:
    """The ``vllm.general_plugins`` entry point."""
    from . import hooks
    hooks.install()


__all__ = ["register", "PluginConfig", "Room", "RequestSteering", "parse_request", "load_set", "unload_set",
           "steering_sets", "MAX_SETS", "MAX_COLUMNS"]
