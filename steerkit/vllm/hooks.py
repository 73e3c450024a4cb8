"""Every vLLM name the plugin relies on, in one module (as ``steerkit.hf`` is for Hugging Face).

Four touch points wrapped, and two methods added for steering sets loaded while serving, all checked
when the plugin loads so that a vLLM that moved them fails the engine's start with one line instead of
steering silently wrong:

- the model runner's ``load_model``: after the model loads, the steering sets are validated against it
  and the site hooks go on its decoder layers;
- the model runner's ``_prepare_inputs``: after it lays out the flattened batch, the bank learns which
  request each token belongs to and its absolute position (chunked prefill, preemption and recompute
  all come through here the same way);
- the input processor's ``process_inputs``: a bad request is refused at admission with a per-request
  error (HTTP 400), and the engine keeps serving the others; a good one is stamped with the copy of its
  set it is steered by (``registry``);
- the prefix cache's ``generate_block_hash_extra_keys``: a steered request's blocks hash with its steering;
- ``steerkit_sets`` on the worker (``worker_sets``) and on the engine core (``engine_sets``), which
  ``collective_rpc`` and the engine client's utility calls reach by name (``runtime``).

Supported model runner: V1 (``GPUModelRunner`` and its ``CPUModelRunner``). The V2 runner is refused at
load with a message naming ``VLLM_USE_V2_MODEL_RUNNER=0``.
"""
from __future__ import annotations

import functools
import logging
import threading

from .requests import COPY, CONFIG_KEY, VECTORS, PluginConfig, cache_key, has_steering, parse_request

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


def install() -> None:
    """Wraps the four touch points and adds the two methods, once per process."""
    from vllm.v1.core import kv_cache_utils
    from vllm.v1.engine import core, input_processor
    from vllm.v1.worker import gpu_model_runner, gpu_worker

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
                (input_processor.InputProcessor, "process_inputs"),
                (kv_cache_utils, "generate_block_hash_extra_keys")]
    added = [(gpu_worker.Worker, WORKER_METHOD, "model_runner", _worker_method),
             (core.EngineCore, ENGINE_METHOD, "collective_rpc", _engine_method)]
    missing = [f"{getattr(o, '__name__', o)}.{name}" for o, name in targets
               if not hasattr(o, "load_model" if name == "refuse_v2" else name)]
    missing += [f"{o.__name__}.{needs}" for o, _, needs, _ in added if needs != "model_runner" and not hasattr(o, needs)]
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
    for owner, name, _, method in added:
        setattr(owner, name, method)


def _worker_method(self, op: str, args: list):
    """``Worker.steerkit_sets``: what ``collective_rpc("steerkit_sets", ...)`` runs on every worker."""
    return worker_sets(self.model_runner, op, *args)


def _engine_method(self, op: str, args: list):
    """``EngineCore.steerkit_sets``: what the engine client's utility call of that name runs (vLLM matches
    a utility call's arguments to the method's named parameters, so the operation's own go in one list)."""
    return engine_sets(self, op, *args)


def engine_caller(engine):
    """A coroutine function ``call(op, *args)`` running ``EngineCore.steerkit_sets`` through an engine's
    client: the server's ``AsyncLLM`` or an offline ``LLMEngine`` (its engine core in a process of its own,
    or in this one)."""
    if engine.vllm_config.parallel_config.data_parallel_size > 1:
        raise ValueError("steerkit: steering sets loaded while serving are not supported with data parallel "
                         "engines yet (each engine core would need its own load)")
    client = engine.engine_core
    if hasattr(client, "call_utility_async"):
        async def call(op, *args):
            return await client.call_utility_async(ENGINE_METHOD, op, list(args))
    elif hasattr(client, "call_utility"):
        async def call(op, *args):
            return client.call_utility(ENGINE_METHOD, op, list(args))
    else:  # InprocClient: the engine core is an object in this process
        async def call(op, *args):
            return engine_sets(client.engine_core, op, *args)
    return call


def llm_engine(llm):
    """The ``LLMEngine`` of an offline ``vllm.LLM``."""
    return llm.llm_engine


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
    facts = model_facts(runner.model_config)
    sets = {name: load_set(name, path, *facts) for name, path in config.vectors.items()}
    layout = None
    if config.room is not None:
        from .bank import Layout

        places = config.room.places or tuple(sorted({key for v in sets.values() for key in v}))
        outside = sorted({key for v in sets.values() for key in v} - set(places))
        if outside:
            raise ValueError(f'steerkit: additional_config["steerkit"]["room"]["places"] leaves out {outside[0][0]}:'
                             f"{outside[0][1]}, where a set the engine starts with steers")
        num_layers, widths = facts[1], facts[2]
        bad = [p for p in places if p[1] >= num_layers]
        if bad:
            raise ValueError(f'steerkit: additional_config["steerkit"]["room"]["places"]: {bad[0][0]}:{bad[0][1]}, '
                             f"but the model has {num_layers} layers")
        layout = Layout.with_room(config.room.columns, {p: widths[p[0]] for p in places}, config.room.norm_preserve)
    param = next(model.parameters())
    bank = SteeringBank(sets, max_tokens=runner.max_num_tokens, max_requests=runner.max_num_reqs,
                        dtype=param.dtype, device=param.device, layout=layout)
    layers_owner = model_hooks.submodule(model, paths["layers"].rpartition(".")[0])
    layers_owner.steerkit_bank = bank  # a submodule of the compiled module: its buffers are graph inputs
    model_hooks.install(bank, model_hooks.submodule(model, paths["layers"]), paths, tensor_parallel())
    runner._steerkit_facts = facts  # what a set loaded while serving is checked against
    log.info("steerkit: %d steering set(s) %s at %s%s", len(sets), sorted(sets), bank.keys(),
             f"; room for {config.room.sets} sets, {config.room.columns} columns" if config.room else "")
    return bank


def model_facts(model_config) -> tuple:
    """(model type, layer count, width per site) of the served model, which a steering set must match."""
    hf = model_config.hf_config
    head_dim = getattr(hf, "head_dim", None)
    widths = {"block_out": hf.hidden_size, "attn_out": hf.hidden_size, "mlp_out": hf.hidden_size,
              "attn_heads": hf.num_attention_heads * head_dim if head_dim else hf.hidden_size}
    return hf.model_type, hf.num_hidden_layers, widths


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
        if req_id not in cache:  # validated at admission; parsed once per request here, by its copy
            cache[req_id] = parse_request({**extra, VECTORS: steered_copy(extra)}, bank.attributes)
        out.append((cache[req_id], int(state.num_prompt_tokens)))
    live = set(req_ids)
    for req_id in [r for r in cache if r not in live and r not in runner.requests]:
        del cache[req_id]
    return out


def steered_copy(extra: dict) -> str | None:
    """The copy of its set a request is steered by: stamped at admission (its set's name alone where the
    front end stamps nothing, as an engine of an older steerkit would)."""
    return extra.get(COPY) or extra.get(VECTORS)


# -- sets loaded while serving: the worker's and the engine core's halves, reached by name over RPC -----
WORKER_METHOD = ENGINE_METHOD = "steerkit_sets"


def worker_sets(runner, op: str, *args):
    """A worker's half: ``place`` (handle, path, freed: check the file against the model, free the copies
    given, write the new one), ``free`` (handles) and ``state``."""
    bank = getattr(runner, "_steerkit_bank", None)
    if bank is None:
        raise ValueError("this engine was started without steerkit's steering sets")
    if op == "place":
        handle, path, freed = args
        vecs = load_set(handle, path, *runner._steerkit_facts)  # before anything changes: a bad file changes nothing
        bank.place(handle, vecs, freeing=freed)  # checks everything first: a refusal frees nothing
        return None
    if op == "free":
        for h in args[0]:
            if h in bank.columns:
                bank.free(h)
        return None
    if op == "state":
        cache = runner.__dict__.get("_steerkit_requests", {})
        for req_id in [r for r in cache if r not in runner.requests]:  # finished or aborted since the last step
            del cache[req_id]
        return {"resident": {h: list(a) for h, a in bank.attributes.items()}, "steered_requests": len(cache),
                "free_columns": bank.width - sum(len(c) for c in bank.columns.values())}
    raise ValueError(f"unknown steerkit_sets operation {op!r}")


def engine_sets(core, op: str, *args):
    """The engine core's half, beside the scheduler (which holds every unfinished request, waiting or
    running): ``load`` (handle, path, k, eviction order, copies in flight) frees what ``Residency.plan``
    picks and has every worker place the copy; returns the copies freed. ``release`` (handles, in flight)
    frees those no unfinished request uses; returns them. ``state``: what each worker holds."""
    from .registry import Residency

    config = PluginConfig.from_additional(core.vllm_config.additional_config)
    if config is None or config.room is None:
        raise ValueError('this engine was started without room for sets loaded while serving: start it with '
                         f'additional_config={{"{CONFIG_KEY}": {{"room": {{"places": ["block_out:12"]}}}}}}')
    residency = core.__dict__.get("_steerkit_residency")
    if residency is None:
        sizes = {name: len(a) for name, a in set_attributes(config).items()}
        residency = core._steerkit_residency = Residency(sizes, config.room.sets, config.room.columns)
    in_use = {steered_copy(r.sampling_params.extra_args) for r in core.scheduler.requests.values()
              if r.sampling_params is not None and has_steering(r.sampling_params.extra_args)}
    if op == "load":
        handle, path, k, order, in_flight = args
        freed = residency.plan(handle, k, list(order), in_use | set(in_flight))
        try:
            core.collective_rpc(WORKER_METHOD, args=("place", [handle, path, list(freed)]))
        except Exception:
            core.collective_rpc(WORKER_METHOD, args=("free", [[handle]]))  # no worker keeps a half-made load
            raise
        residency.apply(handle, k, freed)
        return freed
    if op == "release":
        handles, in_flight = args
        released = residency.release(list(handles), in_use | set(in_flight))
        if released:
            core.collective_rpc(WORKER_METHOD, args=("free", [released]))
        return released
    if op == "state":
        return {"resident": residency.resident(), "in_use": sorted(h for h in in_use if h),
                "workers": core.collective_rpc(WORKER_METHOD, args=("state", []))}
    raise ValueError(f"unknown steerkit_sets operation {op!r}")


# -- front end and scheduler --------------------------------------------------------------------------
def set_attributes(config: PluginConfig) -> dict:
    """{name: attribute names} of the sets an engine starts with, read from the files."""
    from ..vectors import SteeringVectors

    attributes = {}
    for name, path in config.vectors.items():
        try:
            attributes[name] = tuple(SteeringVectors.load(path).attributes)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f'steerkit: steering set "{name}" ({path}): {e}') from None
    return attributes


_CATALOGS: dict = {}
_CATALOGS_LOCK = threading.Lock()


def _catalog(config_json: str):
    """The front end's catalog of one engine configuration, built once per process (admission runs in
    vLLM's input threads and the endpoints in its event loop: both must see the one catalog)."""
    import json

    from .registry import Catalog

    with _CATALOGS_LOCK:
        if config_json not in _CATALOGS:
            config = PluginConfig.from_additional({CONFIG_KEY: json.loads(config_json)})
            _CATALOGS[config_json] = Catalog(set_attributes(config))
        return _CATALOGS[config_json]


def catalog(vllm_config):
    """The front end's catalog for this engine, or None when it was started without steering sets."""
    import json

    additional = vllm_config.additional_config
    cfg = additional.get(CONFIG_KEY) if isinstance(additional, dict) else None
    return None if cfg is None else _catalog(json.dumps(cfg, sort_keys=True))


def _wrap_process_inputs(original):
    @functools.wraps(original)
    def process_inputs(self, *args, **kwargs):
        request = original(self, *args, **kwargs)
        params = getattr(request, "sampling_params", None)
        extra = getattr(params, "extra_args", None) if params is not None else None
        if has_steering(extra):
            if getattr(self.vllm_config, "use_v2_model_runner", False):
                raise _validation_error(V2_REFUSAL)
            try:
                # a new dict on the request's own params (a shallow clone shares the caller's)
                params.extra_args = admit(self.vllm_config, extra)
            except ValueError as e:
                raise _validation_error(str(e)) from None
        return request
    return process_inputs


def admit(vllm_config, extra: dict) -> dict:
    """A steered request's keys, checked against the sets served and stamped with the copy it is steered
    by; ValueError with one line naming the key at fault."""
    sets = catalog(vllm_config)
    if sets is None:
        parse_request(extra, None)  # raises: no steering sets to name
    with sets.lock:  # the name is checked and stamped with one copy, whatever loads meanwhile
        steering = parse_request(extra, sets.attributes())
        return {**extra, COPY: sets.resolve(steering.name).handle}


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
             "process_inputs": _wrap_process_inputs,
             "generate_block_hash_extra_keys": _wrap_block_hash_extra_keys}
