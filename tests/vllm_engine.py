"""Runs one vLLM engine in its own process for tests/test_vllm_plugin.py (vLLM spawns workers, so an
engine per test process is the robust way): ``python tests/vllm_engine.py SPEC.json OUT.json``.

SPEC: {"model": path, "engine": {LLM keyword args}, "batches": [[request, ...], ...]}; a request is
{"prompt_token_ids": [...], "max_tokens": n, "extra_args": {...} or null}. The requests of one batch go
to the engine in one ``generate`` call (one continuous batch). OUT: per batch, per request, the greedy
token ids, each token's logprob, the cached prompt tokens or the error; and the engine's preemptions.
"""
import json
import sys

if __name__ == "__main__":
    from vllm import LLM, SamplingParams
    from vllm.exceptions import VLLMValidationError

    spec = json.load(open(sys.argv[1]))
    llm = LLM(model=spec["model"], gpu_memory_utilization=0.1, seed=0, disable_log_stats=False, **spec["engine"])
    results = []
    for batch in spec["batches"]:
        prompts, params, errors = [], [], {}
        for i, r in enumerate(batch):
            sp = SamplingParams(max_tokens=r["max_tokens"], temperature=0.0, logprobs=0, ignore_eos=True,
                                extra_args=r["extra_args"])
            prompts.append({"prompt_token_ids": r["prompt_token_ids"]})
            params.append(sp)
        try:
            outs = llm.generate(prompts, params, use_tqdm=False)
        except (ValueError, VLLMValidationError) as e:  # a request refused at admission
            results.append([{"error": str(e)}])
            continue
        results.append([{"tokens": list(o.outputs[0].token_ids),
                         "logprobs": [lp[t].logprob for t, lp in zip(o.outputs[0].token_ids, o.outputs[0].logprobs)],
                         "cached": o.num_cached_tokens} for o in outs])
    preemptions = sum(getattr(m, "value", 0) for m in llm.get_metrics() if m.name == "vllm:num_preemptions")
    json.dump({"batches": results, "preemptions": preemptions}, open(sys.argv[2], "w"))
