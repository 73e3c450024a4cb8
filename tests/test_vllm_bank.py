"""The vLLM plugin's parts that need no vLLM: the request keys and the stacked bank, against steerkit's
reference on fresh random inputs (the engine-level tests are in test_vllm_plugin.py)."""
import math

import pytest
import torch

import steerkit as sk
from steerkit import reference
from steerkit.vectors import Entry
from steerkit.vllm.bank import Layout, SteeringBank
from steerkit.vllm.requests import MAX_COLUMNS, MAX_SETS, PluginConfig, Room, RequestSteering, parse_request

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
        parse_request({"steerkit_vectors": "a"}, None)
    with pytest.raises(ValueError, match="unknown steering set 'a'; this engine serves none now"):
        parse_request({"steerkit_vectors": "a"}, {})


def test_plugin_config_is_checked_at_engine_start():
    assert PluginConfig.from_additional({}) is None and PluginConfig.from_additional(None) is None
    assert PluginConfig.from_additional({"steerkit": {"vectors": {"a": "a.safetensors"}}}).vectors == {"a": "a.safetensors"}
    room = PluginConfig.from_additional({"steerkit": {"room": {"sets": 64, "columns": 256,
                                                               "places": ["block_out:12", "mlp_out:3"]}}}).room
    assert room == Room(64, 256, (("block_out", 12), ("mlp_out", 3)), (False,))
    for bad, words in [({"steerkit": []}, "expected"), ({"steerkit": {"vectors": {}}}, "non-empty"),
                       ({"steerkit": {"vector": {}}}, "unknown keys"),
                       ({"steerkit": {"vectors": {"a@1": "p"}}}, 'a NAME without "@"'),
                       ({"steerkit": {"room": {}}}, "needed when the engine starts with no sets"),
                       ({"steerkit": {"room": {"sets": 0, "places": ["block_out:1"]}}}, "sets.*an int in \\[1, 64\\]"),
                       ({"steerkit": {"room": {"columns": 257, "places": ["block_out:1"]}}}, "columns"),
                       ({"steerkit": {"room": {"places": ["block:1"]}}}, "SITE:LAYER"),
                       ({"steerkit": {"room": {"places": ["block_out:1"], "norm_preserve": []}}}, "norm_preserve"),
                       ({"steerkit": {"room": {"size": 3}}}, "unknown keys \\['size'\\]"),
                       ({"steerkit": {"room": {"places": ["block_out:1"], "load_from": "/no/such/folder"}}},
                        "load_from.*expected a folder of steering-set files"),
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
    big = {f"s{i}": sk.SteeringVectors.from_tensors(torch.randn(20, D), site="block_out", layer=0) for i in range(13)}
    with pytest.raises(ValueError, match=f"260 attributes together; at most {MAX_COLUMNS}"):
        SteeringBank(big, 8, 2, torch.float32, torch.device("cpu"))


def _steered_alone(sets, name, strength, x, key):
    v = sets[name]
    if key not in v:
        return x
    e = v[key]
    st = torch.tensor(strength, dtype=torch.float64).expand(x.shape[0], -1)
    return reference.gated_steer(x, e.theta, e.gate_w, e.gate_b, st, v.norm_preserve)[0]


def _buffers(bank):
    return {k: b.clone() for k, b in bank.named_buffers()}


@pytest.mark.parametrize("seed", [0, 1])
def test_a_bank_with_room_takes_and_gives_back_sets_in_place(seed):
    """Sets placed while serving steer like sets given at start, in the same buffers (a captured graph
    keeps reading them); a freed set's columns steer nothing and are reused; a refused set changes
    nothing."""
    sets = _sets(seed)
    widths = {("block_out", 1): D, ("mlp_out", 0): D}
    layout = Layout.with_room(8, widths, flags=(False, True))
    bank = SteeringBank({"gated": sets["gated"]}, 16, 4, torch.float64, torch.device("cpu"), layout=layout)
    pointers = {k: b.data_ptr() for k, b in bank.named_buffers()}
    bank.place("plain", sets["plain"])
    bank.place("other", sets["other"])
    assert bank.columns == {"gated": [0, 1], "plain": [2, 3, 4], "other": [5]}
    x = torch.randn(6, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def check(steerings):
        bank.set_requests([(RequestSteering(n, s, "all"), 1) for n, s in steerings])
        bank.set_positions([0] * len(steerings), [2] * len(steerings))
        for key in widths:
            got = bank.apply(key, x[:2 * len(steerings)])
            for i, (n, s) in enumerate(steerings):
                torch.testing.assert_close(got[2 * i:2 * i + 2], _steered_alone(sets, n, s, x[2 * i:2 * i + 2], key),
                                           rtol=1e-10, atol=1e-10)

    check([("gated", (1.0, -2.0)), ("plain", (0.5, 1.0, -1.0)), ("other", (3.0,))])
    bank.free("plain")
    for launches in bank.launches.values():
        for launch in launches:
            assert launch.theta[2:5].count_nonzero() == 0
    before = _buffers(bank)
    big = sk.SteeringVectors.from_tensors(torch.randn(4, D, dtype=torch.float64), site="block_out", layer=1)
    for name, vecs, words in [("gated", sets["plain"], "already resident"),
                              ("far", sk.SteeringVectors.from_tensors(torch.randn(1, D), site="attn_out", layer=1),
                               "no room for attn_out layer 1"),
                              ("wide", sk.SteeringVectors.from_tensors(torch.randn(1, D + 1), site="block_out", layer=1),
                               "D=17"),
                              ("big", big, "4 attribute column\\(s\\) needed, 3 free of 8")]:
        if name == "big":
            bank.place("filler", sk.SteeringVectors.from_tensors(torch.randn(2, D), site="block_out", layer=1))
            assert bank.columns["filler"] == [2, 3]
            before = _buffers(bank)
        with pytest.raises(ValueError, match=words):
            bank.place(name, vecs)
        assert all(torch.equal(b, before[k]) for k, b in bank.named_buffers())
    bank.place("filler 2", sk.SteeringVectors.from_tensors(torch.randn(1, D), site="mlp_out", layer=0))
    before = _buffers(bank)
    with pytest.raises(ValueError, match="4 attribute column\\(s\\) needed, 2 free of 8"):
        bank.place("big", big, freeing=("nothing resident",))
    with pytest.raises(ValueError, match="no room for attn_out"):  # refused before "filler" is freed
        bank.place("far", sk.SteeringVectors.from_tensors(torch.randn(1, D), site="attn_out", layer=1),
                   freeing=("filler",))
    assert all(torch.equal(b, before[k]) for k, b in bank.named_buffers()) and "filler" in bank.columns
    bank.place("plain again", sets["plain"], freeing=("filler",))  # the first free columns, adjacent or not
    assert bank.columns["plain again"] == [2, 3, 6] and "filler" not in bank.columns
    sets["plain again"] = sets["plain"]
    check([("plain again", (1.0, 1.0, 1.0)), ("gated", (0.0, 1.0))])
    assert {k: b.data_ptr() for k, b in bank.named_buffers()} == pointers
    with pytest.raises(RuntimeError, match="'plain' and 3 strength\\(s\\), but no such set is resident"):
        bank.set_requests([(RequestSteering("plain", (1.0, 1.0, 1.0), "all"), 1)])


def test_a_layout_without_gates_refuses_a_gated_set_and_one_fitting_sets_steers_as_before():
    sets = _sets(3)
    fitted = Layout.fitting(sets)
    assert fitted.columns == 6
    assert [(key, flag, gated) for key, _, flag, gated in fitted.launches] == [
        (("block_out", 1), False, True), (("block_out", 1), True, False), (("mlp_out", 0), False, True),
        (("mlp_out", 0), True, False)]
    plain_only = SteeringBank({"plain": sets["plain"]}, 8, 2, torch.float64, torch.device("cpu"),
                              layout=Layout(6, tuple((k, D, True, False) for k in (("block_out", 1), ("mlp_out", 0)))))
    with pytest.raises(ValueError, match="norm_preserve=False, gated"):
        plain_only.place("gated", sets["gated"])
