"""The vLLM plugin's parts that need no vLLM: the request keys and the stacked bank, against steerkit's
reference on fresh random inputs (the engine-level tests are in test_vllm_plugin.py)."""
import math

import pytest
import torch

import steerkit as sk
from steerkit import reference
from steerkit.vectors import Entry
from steerkit.vllm.bank import SteeringBank
from steerkit.vllm.requests import MAX_SETS, PluginConfig, RequestSteering, parse_request

D = 16


def _sets(seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return {
        "gated": sk.SteeringVectors({("block_out", 1): Entry(r(2, D), r(2, D), r(2))}, gate_mode="sigmoid"),
        "plain": sk.SteeringVectors({("block_out", 1): Entry(r(3, D)), ("mlp_out", 0): Entry(r(3, D))},
                                    gate_mode="none", norm_preserve=True),
        "other": sk.SteeringVectors({("mlp_out", 0): Entry(r(1, D), r(1, D))}, gate_mode="sigmoid"),
    }


def test_parse_request_reads_the_flat_keys_and_names_the_key_at_fault():
    sizes = {"a": ("x", "y")}
    assert parse_request(None, sizes) is None and parse_request({"other": 1}, sizes) is None
    r = parse_request({"steerkit_vectors": "a", "steerkit_strength": [1, 0.5], "steerkit_tokens": 3}, sizes)
    assert r == RequestSteering("a", (1.0, 0.5), 3)
    assert parse_request({"steerkit_vectors": "a"}, sizes).strength == (1.0, 1.0)
    for extra, words in [({"steerkit_vectors": "b"}, "unknown steering set 'b'"),
                         ({"steerkit_strength": 1.0}, "steerkit_vectors is required"),
                         ({"steerkit_vectors": "a", "steerkit_strength": [1.0]}, "a list of 2 floats"),
                         ({"steerkit_vectors": "a", "steerkit_strength": math.inf}, "NaN or Inf"),
                         ({"steerkit_vectors": "a", "steerkit_strength": "1"}, "steerkit_strength"),
                         ({"steerkit_vectors": "a", "steerkit_tokens": "some"}, "steerkit_tokens"),
                         ({"steerkit_vectors": "a", "steerkit_tokens": -1}, "steerkit_tokens")]:
        with pytest.raises(ValueError, match=words):
            parse_request(extra, sizes)
    with pytest.raises(ValueError, match="without steering sets"):
        parse_request({"steerkit_vectors": "a"}, {})


def test_plugin_config_is_checked_at_engine_start():
    assert PluginConfig.from_additional({}) is None and PluginConfig.from_additional(None) is None
    assert PluginConfig.from_additional({"steerkit": {"vectors": {"a": "a.safetensors"}}}).vectors == {"a": "a.safetensors"}
    for bad, words in [({"steerkit": []}, "expected"), ({"steerkit": {"vectors": {}}}, "non-empty"),
                       ({"steerkit": {"vector": {}}}, "unknown keys"),
                       ({"steerkit": {"vectors": {f"s{i}": "p" for i in range(MAX_SETS + 1)}}}, "at most")]:
        with pytest.raises(ValueError, match=words):
            PluginConfig.from_additional(bad)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_launch_per_key_equals_each_request_steered_alone(seed):
    """Four requests in one flattened batch (two sets, a policy, an unsteered one, a chunk that starts
    mid-prompt): the bank's output equals the reference applied per request, and the unsteered rows
    come back bit-identical."""
    sets = _sets(seed)
    bank = SteeringBank(sets, max_tokens=64, max_requests=8, dtype=torch.float64, device=torch.device("cpu"))
    reqs = [RequestSteering("gated", (1.5, -0.5), "all"), None, RequestSteering("plain", (1.0, 0.5, 2.0), "generated"),
            RequestSteering("other", (2.0,), "prompt")]
    starts, counts, prompts = [0, 0, 5, 3], [4, 3, 4, 5], [4, 3, 6, 6]  # request 3: a chunk from position 3
    bank.set_requests([(r, p) if r else None for r, p in zip(reqs, prompts)])
    bank.set_positions(starts, counts)
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(sum(counts), D, generator=g, dtype=torch.float64)
    for key in [("block_out", 1), ("mlp_out", 0)]:
        got = bank.apply(key, x)
        offset = 0
        for r, s, c, p in zip(reqs, starts, counts, prompts):
            rows = x[offset:offset + c]
            want = rows.clone()
            if r is not None and key in sets[r.name]:
                e, v = sets[r.name][key], sets[r.name]
                keep = torch.tensor([r.steers(q, p) for q in range(s, s + c)])
                st = torch.tensor(r.strength, dtype=torch.float64)[None, :] * keep[:, None]
                want = reference.gated_steer(rows, e.theta, e.gate_w, e.gate_b, st, v.norm_preserve)[0]
                torch.testing.assert_close(got[offset:offset + c], want, rtol=1e-10, atol=1e-10)
            else:
                assert torch.equal(got[offset:offset + c], rows)
            offset += c
    # the next, smaller batch leaves no stale rows behind (padding rows are never steered)
    bank.set_requests([None])
    bank.set_positions([0], [2])
    assert bank.token_rows.count_nonzero() == 0


def test_the_bank_refuses_more_attributes_than_one_launch_holds():
    big = {f"s{i}": sk.SteeringVectors.from_tensors(torch.randn(20, D), site="block_out", layer=0) for i in range(4)}
    with pytest.raises(ValueError, match="at most 64"):
        SteeringBank(big, 8, 2, torch.float32, torch.device("cpu"))
