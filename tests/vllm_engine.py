"""Runs one vLLM engine in its own process for tests/test_vllm_plugin.py (vLLM spawns workers, so an
engine per test process is the robust way): ``python tests/vllm_engine.py SPEC.json OUT.json``.

SPEC: {"model": path, "engine": {LLM keyword args}, "batches": [[request, ...] or {"op": ...}, ...]}; a
request is {"prompt_token_ids": [...], "max_tokens": n, "extra_args": {...} or null}; an op loads, unloads
or lists steering sets while the engine serves (``op`` below). The requests of one batch go
to the engine in one ``generate`` call (one continuous batch). OUT: per batch, per request, the greedy
token ids, each token's logprob, the cached prompt tokens or the error; and the engine's preemptions.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent


def run_engine(root: Path, name: str, model: str, batches: list, vectors: dict | None = None, plugin: bool = True,
               env: dict | None = None, room: dict | None = None, **engine) -> dict:
    """Serves ``batches`` from one engine in its own process; ``vectors`` ({name: path}) configures the
    plugin's steering sets and ``room`` its room for sets loaded while serving; ``plugin=False`` starts
    vLLM without any plugin."""
    spec = {"model": model, "engine": dict(engine), "batches": batches}
    if vectors is not None:
        spec["engine"]["additional_config"] = {"steerkit": {"vectors": vectors, **({"room": room} if room else {})}}
    spec_path, out_path = root / f"{name}.spec.json", root / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, **(env or {}))
    if not plugin:
        env["VLLM_PLUGINS"] = "none"  # vLLM loads only the plugins named here: none of them
    proc = subprocess.run([sys.executable, str(HERE / "vllm_engine.py"), str(spec_path), str(out_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return {"failed": proc.stdout + proc.stderr}  # vLLM logs the workers' errors to stdout
    return json.loads(out_path.read_text())


def request(ids, name=None, strength=None, tokens="all", max_tokens=10) -> dict:
    extra = None
    if name is not None:
        extra = {"steerkit_vectors": name, "steerkit_tokens": tokens}
        if strength is not None:
            extra["steerkit_strength"] = strength
    return {"prompt_token_ids": list(ids), "max_tokens": max_tokens, "extra_args": extra}


def hf_greedy(model, req: dict, vecs=None) -> dict:
    """steerkit's Hugging Face steer() (``vecs`` with the request's strength and policy, or none): greedy
    tokens and their logprobs, one token at a time through the KV cache as an engine decodes."""
    import steerkit as sk
    from steerkit import hf

    def run():
        ids = torch.tensor([req["prompt_token_ids"]])
        tokens, logprobs, past = [], [], None
        with torch.no_grad():
            for _ in range(req["max_tokens"]):
                out = model(ids, use_cache=True, **hf.cache_kwargs(model, past))
                past = hf.output_cache(out)
                lp = torch.log_softmax(out.logits[0, -1].double(), -1)
                t = int(lp.argmax())
                tokens.append(t)
                logprobs.append(float(lp[t]))
                ids = torch.tensor([[t]])
        return {"tokens": tokens, "logprobs": logprobs}

    extra = req["extra_args"]
    if extra is None:
        return run()
    strength = extra.get("steerkit_strength", 1.0)
    strength = torch.tensor(strength) if isinstance(strength, list) else float(strength)
    with sk.steer(model, vecs, strength=strength, tokens=extra.get("steerkit_tokens", "all")):
        return run()


def assert_same(got: dict, want: dict, atol: float = 2e-3) -> None:
    assert "error" not in got, got
    assert got["tokens"] == want["tokens"]
    assert max(abs(a - b) for a, b in zip(got["logprobs"], want["logprobs"])) < atol


if __name__ == "__main__":
    from vllm import LLM, SamplingParams
    from vllm.exceptions import VLLMValidationError

    import steerkit.vllm as skv

    def params(r):
        return SamplingParams(max_tokens=r["max_tokens"], temperature=0.0, logprobs=0, ignore_eos=True,
                              extra_args=r["extra_args"])

    def result(o):
        return {"tokens": list(o.outputs[0].token_ids),
                "logprobs": [lp[t].logprob for t, lp in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)],
                "cached": o.num_cached_tokens}

    def op(llm, spec):
        """A step that is not a batch: load, unload or list steering sets, or ``interleave``: one request
        started, the engine stepped, a set loaded (a name loaded again: a new copy), a second request
        started, both run to the end."""
        try:
            if spec["op"] == "load":
                return skv.load_set(llm, spec["name"], spec["path"])
            if spec["op"] == "unload":
                return skv.unload_set(llm, spec["name"])
            if spec["op"] == "sets":
                return skv.steering_sets(llm)
            if spec["op"] == "wait":
                import time
                time.sleep(spec["seconds"])
                return {}
            engine, outs = llm.llm_engine, {}
            engine.add_request("first", {"prompt_token_ids": spec["first"]["prompt_token_ids"]}, params(spec["first"]))
            for _ in range(spec["steps"]):
                outs.update({o.request_id: o for o in engine.step() if o.finished})
            loaded = skv.load_set(llm, spec["name"], spec["path"])
            engine.add_request("second", {"prompt_token_ids": spec["second"]["prompt_token_ids"]}, params(spec["second"]))
            while engine.has_unfinished_requests():
                outs.update({o.request_id: o for o in engine.step() if o.finished})
            return {"loaded": loaded, "first": result(outs["first"]), "second": result(outs["second"])}
        except (ValueError, KeyError) as e:
            return {"error": str(e)}

    spec = json.load(open(sys.argv[1]))
    llm = LLM(model=spec["model"], gpu_memory_utilization=0.1, seed=0, disable_log_stats=False, **spec["engine"])
    results = []
    for batch in spec["batches"]:
        if isinstance(batch, dict):
            results.append(op(llm, batch))
            continue
        prompts = [{"prompt_token_ids": r["prompt_token_ids"]} for r in batch]
        try:
            outs = llm.generate(prompts, [params(r) for r in batch], use_tqdm=False)
        except (ValueError, VLLMValidationError) as e:  # a request refused at admission
            results.append([{"error": str(e)}])
            continue
        results.append([result(o) for o in outs])
    preemptions = sum(getattr(m, "value", 0) for m in llm.get_metrics() if m.name == "vllm:num_preemptions")
    json.dump({"batches": results, "preemptions": preemptions}, open(sys.argv[2], "w"))
