"""Every vLLM name the plugin relies on, in one module (as ``steerkit.hf`` is for Hugging Face).

Four touch points, checked when the plugin loads so that a vLLM that moved them fails the engine's
start with one line instead of steering silently wrong:

- the model runner's ``load_model``: after the model loads, the steering sets are validated against it
  and the site hooks go on its decoder layers;
- the model runner's ``_prepare_inputs``: after it lays out the flattened batch, the bank learns which
  request each token belongs to and its absolute position (chunked prefill, preemption and recompute
  all come through here the same way);
- the input processor's ``_validate_params``: a bad request is refused at admission with a per-request
  error (HTTP 400), and the engine keeps serving the others;
- the prefix cache's ``generate_block_hash_extra_keys``: a steered request's blocks hash with its steering.

Supported model runner: V1 (``GPUModelRunner`` and its ``CPUModelRunner``). The V2 runner is refused at
load with a message naming ``VLLM_USE_V2_MODEL_RUNNER=0``.
"""
from __future__ import annotations

import functools
import logging

from .requests import CONFIG_KEY, PluginConfig, cache_key, has_steering, parse_request

log = logging.getLogger("steerkit.vllm")

# family knowledge as data, keyed by vLLM's model class: its module paths (they differ from Hugging Face's
# for the fused MLP and QKV) and what a decoder layer returns. "pair": (hidden, residual), whose sum is
# the residual stream (the next layer's fused add-norm adds them); "stream": the residual stream itself.
_PRE_NORM = {"layers": "model.layers", "attn_proj": "self_attn.o_proj", "mlp_proj": "mlp.down_proj", "block_out": "pair"}
ARCHS = {
    "LlamaForCausalLM": _PRE_NORM,
    "MistralForCausalLM": _PRE_NORM,
    "Qwen2ForCausalLM": _PRE_NORM,
    "Qwen3ForCausalLM": _PRE_NORM,
    "GemmaForCausalLM": _PRE_NORM,
    "Gemma2ForCausalLM": _PRE_NORM,  # o_proj and down_proj outputs: before the post-attention/-feedforward norms
    "Gemma3ForCausalLM": _PRE_NORM,
    "Phi3ForCausalLM": _PRE_NORM,  # vLLM's Phi-3 is its Llama with fused QKV and gate-up
    "GPT2LMHeadModel": {"layers": "transformer.h", "attn_proj": "attn.c_proj", "mlp_proj": "mlp.c_proj",
                        "block_out": "stream"},
    "OPTForCausalLM": {"layers": "model.decoder.layers", "attn_proj": "self_attn.out_proj", "mlp_proj": "fc2",
                       "block_out": "stream"},
}
# classes vLLM may pick for a model that steerkit knows in Hugging Face, and why they are not steered
REFUSED = {
    "TransformersForCausalLM": "vLLM runs it through its Transformers fallback backend (vLLM 0.32 has no native "
                               "implementation of this family), whose layers steerkit does not hook",
}


def _get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def install() -> None:
    """Wraps the four touch points once per process."""
    from vllm.v1.core import kv_cache_utils
    from vllm.v1.engine import input_processor
    from vllm.v1.worker import gpu_model_runner

    runner_classes = [gpu_model_runner.GPUModelRunner]
    try:
        from vllm.v1.worker import cpu_model_runner
        runner_classes.append(cpu_model_runner.CPUModelRunner)
    except ImportError:  # a GPU build without the CPU runner
        pass
    targets = [(cls, "load_model") for cls in runner_classes if "load_model" in vars(cls)]
    try:  # the V2 runner: refused at start when steering sets are configured, never silently unsteered
        from vllm.v1.worker.gpu import model_runner as v2
        targets.append((v2.GPUModelRunner, "refuse_v2"))
    except ImportError:
        pass
    targets += [(gpu_model_runner.GPUModelRunner, "_prepare_inputs"),
                (input_processor.InputProcessor, "_validate_params"),
                (kv_cache_utils, "generate_block_hash_extra_keys")]
    missing = [f"{getattr(o, '__name__', o)}.{name}" for o, name in targets
               if not hasattr(o, "load_model" if name == "refuse_v2" else name)]
    if missing:
        raise RuntimeError(f"steerkit's vLLM plugin does not know this vLLM: {', '.join(missing)} moved; "
                           "it supports vLLM 0.32")
    for owner, name in targets:
        attr = "load_model" if name == "refuse_v2" else name
        original = getattr(owner, attr)
        if getattr(original, "_steerkit", False):
            continue
        wrapper = _WRAPPERS[name](original)
        wrapper._steerkit = True
        setattr(owner, attr, wrapper)


# -- worker side ----------------------------------------------------------------------------------------
def _wrap_load_model(original):
    @functools.wraps(original)
    def load_model(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        config = PluginConfig.from_additional(self.vllm_config.additional_config)
        if config is not None:
            self._steerkit_bank = _attach(self, config)
        return result
    return load_model


V2_REFUSAL = "steerkit's vLLM plugin supports the V1 model runner; set VLLM_USE_V2_MODEL_RUNNER=0"


def _wrap_refuse_v2(original):
    @functools.wraps(original)
    def load_model(self, *args, **kwargs):
        if PluginConfig.from_additional(self.vllm_config.additional_config) is not None:
            raise RuntimeError(V2_REFUSAL)
        return original(self, *args, **kwargs)
    return load_model


def _attach(runner, config: PluginConfig):
    from . import model_hooks
    from .bank import SteeringBank

    model = runner.get_model()
    arch = type(model).__name__
    if arch not in ARCHS:
        why = REFUSED.get(arch, "steerkit has no layout for this vLLM class")
        named = "/".join(getattr(runner.model_config.hf_config, "architectures", None) or [arch])
        raise RuntimeError(f"steerkit: cannot steer {named} in vLLM (loaded as {arch}): {why}. Steering sets were "
                           f"configured, so the engine does not start unsteered. Supported: {', '.join(ARCHS)}")
    paths = ARCHS[arch]
    hf = runner.model_config.hf_config
    widths = {"block_out": hf.hidden_size, "attn_out": hf.hidden_size, "mlp_out": hf.hidden_size,
              "attn_heads": hf.num_attention_heads * getattr(hf, "head_dim", None) if getattr(hf, "head_dim", None)
              else hf.hidden_size}
    sets = {name: load_set(name, path, hf.model_type, hf.num_hidden_layers, widths)
            for name, path in config.vectors.items()}
    param = next(model.parameters())
    bank = SteeringBank(sets, max_tokens=runner.max_num_tokens, max_requests=runner.max_num_reqs,
                        dtype=param.dtype, device=param.device)
    layers_owner = _get(model, paths["layers"].rpartition(".")[0])
    layers_owner.steerkit_bank = bank  # a submodule of the compiled module: its buffers are graph inputs
    model_hooks.install(bank, _get(model, paths["layers"]), paths, tensor_parallel())
    log.info("steerkit: %d steering set(s) %s at %s", len(sets), sorted(sets), bank.keys())
    return bank


def load_set(name: str, path: str, model_type: str, num_layers: int, widths: dict):
    """Loads one steering set and checks it against the model; one line naming the file on failure."""
    from ..vectors import SteeringVectors

    where = f'steerkit: steering set "{name}" ({path})'
    try:
        vecs = SteeringVectors.load(path)
    except Exception as e:  # noqa: BLE001 - one line naming the file, whatever the loader raised
        raise ValueError(f"{where}: {e}") from None
    made_for = vecs.provenance.get("model_type")
    if made_for is not None and made_for != model_type:
        raise ValueError(f"{where}: made for a {made_for!r} model, but this model is {model_type!r}")
    for site, layer in vecs:
        if layer >= num_layers:
            raise ValueError(f"{where}: {site} layer {layer}, but the model has {num_layers} layers")
        if vecs[(site, layer)].hidden_size != widths[site]:
            raise ValueError(f"{where}: {site} layer {layer} has D={vecs[(site, layer)].hidden_size}, but the "
                             f"model's {site} width is {widths[site]}")
    return vecs


def tensor_parallel():
    """(world size, rank, all_gather(x, dim)) of the tensor-parallel group."""
    from vllm.distributed import (
        get_tensor_model_parallel_rank,
        get_tensor_model_parallel_world_size,
        tensor_model_parallel_all_gather,
    )
    return get_tensor_model_parallel_world_size(), get_tensor_model_parallel_rank(), tensor_model_parallel_all_gather


def _wrap_prepare_inputs(original):
    @functools.wraps(original)
    def _prepare_inputs(self, scheduler_output, num_scheduled_tokens, *args, **kwargs):
        result = original(self, scheduler_output, num_scheduled_tokens, *args, **kwargs)
        before_forward(self, num_scheduled_tokens)
        return result
    return _prepare_inputs


def before_forward(runner, num_scheduled_tokens) -> None:
    """The per-step host path: tells the runner's bank (if any) which request each token belongs to.
    The requests' steering is re-read only when the batch's requests change; each step then costs a few
    numpy operations over the batch, whatever its size."""
    bank = getattr(runner, "_steerkit_bank", None)
    if bank is None:
        return
    batch = runner.input_batch
    n = batch.num_reqs
    ids = batch.req_ids[:n]
    if ids != runner.__dict__.get("_steerkit_ids"):
        bank.set_requests(_requests(runner, bank, ids))
        runner._steerkit_ids = list(ids)
    bank.set_positions(batch.num_computed_tokens_cpu[:n], num_scheduled_tokens[:n])


def _requests(runner, bank, req_ids) -> list:
    """Per request in batch order: (steering, prompt length), or None when it is not steered."""
    cache = runner.__dict__.setdefault("_steerkit_requests", {})
    out = []
    for req_id in req_ids:
        state = runner.requests[req_id]
        params = state.sampling_params
        extra = getattr(params, "extra_args", None) if params is not None else None
        if not has_steering(extra):
            out.append(None)
            continue
        if req_id not in cache:  # validated at admission; parsed once per request here
            cache[req_id] = parse_request(extra, bank.attributes)
        out.append((cache[req_id], int(state.num_prompt_tokens)))
    live = set(req_ids)
    for req_id in [r for r in cache if r not in live and r not in runner.requests]:
        del cache[req_id]
    return out


# -- front end and scheduler --------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _set_attributes(config_json: str) -> dict:
    """{name: attribute names} of the configured sets, read once per front end from the files."""
    import json

    from ..vectors import SteeringVectors
    config = PluginConfig.from_additional({CONFIG_KEY: json.loads(config_json)})
    attributes = {}
    for name, path in config.vectors.items():
        try:
            attributes[name] = tuple(SteeringVectors.load(path).attributes)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f'steerkit: steering set "{name}" ({path}): {e}') from None
    return attributes


def _wrap_validate_params(original):
    @functools.wraps(original)
    def _validate_params(self, params, *args, **kwargs):
        result = original(self, params, *args, **kwargs)
        extra = getattr(params, "extra_args", None)
        if has_steering(extra):
            import json
            if getattr(self.vllm_config, "use_v2_model_runner", False):
                raise _validation_error(V2_REFUSAL)
            additional = self.vllm_config.additional_config
            cfg = additional.get(CONFIG_KEY) if isinstance(additional, dict) else None
            try:
                parse_request(extra, _set_attributes(json.dumps(cfg, sort_keys=True)) if cfg is not None else {})
            except ValueError as e:
                raise _validation_error(str(e)) from None
        return result
    return _validate_params


def _validation_error(message: str) -> Exception:
    try:
        from vllm.exceptions import VLLMValidationError
        return VLLMValidationError(message)
    except ImportError:
        return ValueError(message)


def _wrap_block_hash_extra_keys(original):
    @functools.wraps(original)
    def generate_block_hash_extra_keys(request, start_token_idx, *args, **kwargs):
        keys, next_mm = original(request, start_token_idx, *args, **kwargs)
        params = getattr(request, "sampling_params", None)
        extra = getattr(params, "extra_args", None) if params is not None else None
        if start_token_idx == 0 and has_steering(extra):
            # the first block's hash chains into every later block's, as vLLM's own cache_salt does
            salt = ("steerkit", cache_key(extra))
            keys = (keys or ()) + (salt,)
        return keys, next_mm
    return generate_block_hash_extra_keys


_WRAPPERS = {"load_model": _wrap_load_model, "refuse_v2": _wrap_refuse_v2, "_prepare_inputs": _wrap_prepare_inputs,
             "_validate_params": _wrap_validate_params,
             "generate_block_hash_extra_keys": _wrap_block_hash_extra_keys}
