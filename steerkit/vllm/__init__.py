"""steerkit's vLLM plugin: per-request gated multi-attribute steering in a vLLM engine, no fork.

``pip install "steerkit[vllm]"`` registers ``register`` under the ``vllm.general_plugins`` entry point;
vLLM calls it in every process. Steering sets load at engine start::

    LLM(model=..., additional_config={"steerkit": {"vectors": {"NAME": "path.safetensors"}}})

and a request picks one with flat keys, offline or over HTTP (``vllm_xargs``)::

    SamplingParams(extra_args={"steerkit_vectors": "NAME", "steerkit_strength": [1.0, 0.0],
                               "steerkit_tokens": "all"})

A request without these keys is untouched. See ``requests`` (the keys), ``bank`` (the stacked sets and
per-token strengths), ``model_hooks`` (the sites) and ``hooks`` (every vLLM name the plugin uses).
"""
from .requests import MAX_COLUMNS, MAX_SETS, PluginConfig, RequestSteering, parse_request


def register() -> None:
    """The ``vllm.general_plugins`` entry point."""
    from . import hooks
    hooks.install()


__all__ = ["register", "PluginConfig", "RequestSteering", "parse_request", "MAX_SETS", "MAX_COLUMNS"]
