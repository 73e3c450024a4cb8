"""Steering sets loaded while serving, end to end without vLLM: the front end's SetControl and admission,
the engine core's half (engine_sets) and a worker's (worker_sets) with a real bank, wired as vLLM wires
them (a utility call, then collective_rpc), against steerkit's reference. The same flow in a vLLM engine
in a vLLM engine: test_vllm_plugin.py; over HTTP, under load: test_vllm_load.py."""
import asyncio
from types import SimpleNamespace as NS

import pytest
import torch

import steerkit as sk
from steerkit import reference
from steerkit.vllm import hooks, registry
from steerkit.vllm.bank import Layout, SteeringBank
from steerkit.vllm.requests import COPY, RequestSteering
from steerkit.vllm.runtime import SetControl

D, LAYERS = 16, 2


def _save(tmp_path, name, k, seed, d=D, site="block_out", layer=1, model_type="llama"):
    g = torch.Generator().manual_seed(seed)
    vecs = sk.SteeringVectors.from_tensors(torch.randn(k, d, generator=g, dtype=torch.float64), site=site, layer=layer,
                                           gate_w=torch.randn(k, d, generator=g, dtype=torch.float64),
                                           gate_b=torch.randn(k, generator=g, dtype=torch.float64),
                                           attributes=[f"{name}{i}" for i in range(k)])
    vecs.provenance["model_type"] = model_type
    path = tmp_path / f"{name}-{seed}.safetensors"
    vecs.save(path)
    return str(path), sk.SteeringVectors.load(path)


class World:
    """One engine: a front end (SetControl, admission), an engine core with a scheduler's unfinished
    requests, and one worker whose bank has room for 3 sets in 6 columns at block_out layer 1."""

    def __init__(self, tmp_path, start: dict, load_from=None):
        room = {"sets": 3, "columns": 6, "places": ["block_out:1"]}
        if load_from is not None:
            room["load_from"] = str(load_from)
        hf = NS(model_type="llama", num_hidden_layers=LAYERS, hidden_size=D, num_attention_heads=2, head_dim=8)
        self.config = NS(additional_config={"steerkit": {"vectors": start, "room": room}},
                         model_config=NS(hf_config=hf), parallel_config=NS(data_parallel_size=1))
        facts = hooks.model_facts(self.config.model_config)
        sets = {n: hooks.load_set(n, p, *facts) for n, p in start.items()}
        layout = Layout.with_room(6, {("block_out", 1): D})
        self.runner = NS(_steerkit_bank=SteeringBank(sets, 32, 8, torch.float64, torch.device("cpu"), layout=layout),
                         _steerkit_facts=facts, requests={})
        self.core = NS(vllm_config=self.config, scheduler=NS(requests={}),
                       collective_rpc=lambda method, args: [hooks.worker_sets(self.runner, args[0], *args[1])])

        async def call(op, *args):
            return hooks.engine_sets(self.core, op, *args)
        self.control = SetControl(self.config, call)

    def run(self, coro):
        return asyncio.run(coro)

    def admit(self, request_id, name, strength):
        extra = hooks.admit(self.config, {"steerkit_vectors": name, "steerkit_strength": strength})
        self.core.scheduler.requests[request_id] = NS(sampling_params=NS(extra_args=extra))
        return extra

    def finish(self, request_id):
        del self.core.scheduler.requests[request_id]

    @property
    def bank(self):
        return self.runner._steerkit_bank


def _steers_like(bank, extra, vecs, seed):
    """The bank steers a request admitted with ``extra`` exactly as ``vecs`` alone would."""
    strength = tuple(float(s) for s in extra["steerkit_strength"])
    bank.set_requests([(RequestSteering(hooks.steered_copy(extra), strength, "all"), 1)])
    bank.set_positions([0], [3])
    x = torch.randn(3, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    e = vecs[("block_out", 1)]
    want = reference.gated_steer(x, e.theta, e.gate_w, e.gate_b, torch.tensor(strength, dtype=torch.float64).expand(3, -1),
                                 vecs.norm_preserve)[0]
    torch.testing.assert_close(bank.apply(("block_out", 1), x), want, rtol=1e-10, atol=1e-10)


def test_loads_replace_and_unload_while_requests_keep_their_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "IN_FLIGHT_SECONDS", 0.0)  # only the scheduler's requests count as in use
    path_a, vecs_a = _save(tmp_path, "a", 2, 0)
    w = World(tmp_path, {"a": path_a})
    old = w.admit("r1", "a", [1.0, -0.5])
    assert old[COPY] == "a"

    path_a2, vecs_a2 = _save(tmp_path, "a", 2, 1)
    done = w.run(w.control.load("a", path_a2))
    assert done == {"name": "a", "copy": "a@1", "attributes": ["a0", "a1"], "freed": [], "no_longer_served": []}
    new = w.admit("r2", "a", [0.5, 2.0])
    assert new[COPY] == "a@1"
    _steers_like(w.bank, old, vecs_a, 0)  # r1 keeps the copy it was admitted under
    _steers_like(w.bank, new, vecs_a2, 1)

    out = w.run(w.control.unload("a"))
    assert out["copy"] == "a@1" and out["retiring"]  # r2 still runs under it
    with pytest.raises(ValueError, match="unknown steering set 'a'"):
        hooks.admit(w.config, {"steerkit_vectors": "a"})
    w.finish("r1")
    w.finish("r2")
    state = w.run(w.control.state())
    assert state["sets"] == {} and state["resident"] == {} and state["workers"][0]["resident"] == {}
    assert state["workers"][0]["free_columns"] == 6


def test_room_is_made_from_the_least_recently_used_never_from_a_set_in_use(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "IN_FLIGHT_SECONDS", 0.0)
    paths = {n: _save(tmp_path, n, 2, s)[0] for s, n in enumerate("abcd")}
    w = World(tmp_path, {"a": paths["a"], "b": paths["b"]})
    w.run(w.control.load("c", paths["c"]))  # 3 sets, 6 columns: full
    w.admit("r1", "a", [1.0, 1.0])
    w.admit("r2", "c", [1.0, 1.0])
    done = w.run(w.control.load("d", paths["d"]))
    assert done["freed"] == ["b"] and done["no_longer_served"] == ["b"]  # a and c are in use
    with pytest.raises(ValueError, match="no room for a set of 2 attributes: 3 of 3 sets and 6 of 6 columns resident"):
        w.admit("r3", "d", [1.0, 1.0])
        w.run(w.control.load("b", paths["b"]))
    assert sorted(w.control.catalog.attributes()) == ["a", "c", "d"]  # the refused load changed nothing
    assert sorted(w.bank.columns) == ["a", "c", "d"]


def test_a_file_for_another_model_is_refused_in_one_line_and_nothing_changes(tmp_path):
    path_a, _ = _save(tmp_path, "a", 2, 0)
    w = World(tmp_path, {"a": path_a})
    before = {k: b.clone() for k, b in w.bank.named_buffers()}
    for path, words in [(_save(tmp_path, "w", 1, 5, d=D + 8)[0], "has D=24, but the model's block_out width is 16"),
                        (_save(tmp_path, "t", 1, 6, model_type="gpt2")[0], "made for a 'gpt2' model"),
                        (_save(tmp_path, "l", 1, 7, layer=LAYERS)[0], "layer 2, but the model has 2 layers"),
                        (_save(tmp_path, "m", 1, 8, site="mlp_out", layer=0)[0], "no room for mlp_out layer 0"),
                        (str(tmp_path / "missing.safetensors"), "missing.safetensors"),
                        (_save(tmp_path, "big", 5, 9)[0], "no room for a set of 5 attributes")]:
        with pytest.raises(ValueError, match=words) as e:
            w.run(w.control.load("x", path))
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match='name: expected a non-empty string without "@"'):
        w.run(w.control.load("x@1", path_a))
    assert w.control.catalog.attributes() == {"a": ("a0", "a1")}
    assert all(torch.equal(b, before[k]) for k, b in w.bank.named_buffers())


def test_the_http_routes_load_list_and_unload_and_refuse_in_one_line(tmp_path, monkeypatch):
    """The endpoint plugin's routes on a FastAPI app (fastapi comes with vLLM), over the same engine."""
    pytest.importorskip("fastapi", reason="fastapi comes with vLLM (CI runs this in .venv-ci-vllm)")
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from steerkit.vllm.runtime import SteeringSetsEndpoints

    monkeypatch.setattr(registry, "IN_FLIGHT_SECONDS", 0.0)
    path_a, _ = _save(tmp_path, "a", 2, 0)
    path_b, _ = _save(tmp_path, "b", 2, 1)
    w = World(tmp_path, {"a": path_a})
    plugin, app = SteeringSetsEndpoints(), FastAPI()
    plugin.attach_router(app)
    http = TestClient(app)
    assert http.post("/v1/steerkit/load_set", json={"name": "b", "path": path_b}).json()["error"].startswith(
        "steerkit: this server has no engine")  # before init_state
    plugin.control = w.control
    r = http.post("/v1/steerkit/load_set", json={"name": "b", "path": path_b})
    assert r.status_code == 200 and r.json()["copy"] == "b" and r.json()["attributes"] == ["b0", "b1"]
    listed = http.get("/v1/steerkit/sets").json()
    assert listed["sets"] == {"a": {"copy": "a", "attributes": ["a0", "a1"]}, "b": {"copy": "b", "attributes": ["b0", "b1"]}}
    assert listed["room"] == {"sets": 3, "columns": 6} and listed["workers"][0]["free_columns"] == 2
    for body, code, words in [({"name": "c", "path": str(tmp_path / "none.safetensors")}, 400, "none.safetensors"),
                              ({"name": "c"}, 400, "path: expected"),
                              ({"name": "c", "path": path_b, "force": True}, 400, "unknown keys ['force']"),
                              ([1, 2], 400, "expected a JSON object with name, path")]:
        r = http.post("/v1/steerkit/load_set", json=body)
        assert r.status_code == code and words in r.json()["error"], r.json()
    r = http.post("/v1/steerkit/unload_set", json={"name": "zz"})
    assert r.status_code == 404 and r.json()["error"] == "name: no steering set 'zz' is served"
    r = http.post("/v1/steerkit/unload_set", json={"name": "b"})
    assert r.status_code == 200 and r.json() == {"name": "b", "copy": "b", "freed": ["b"], "retiring": False}


def test_a_request_names_a_set_by_its_file_and_it_is_loaded_once(tmp_path, monkeypatch):
    """Where the room has load_from, ``steerkit_path`` in a completion request loads the file's set (once)
    and the request reaches vLLM naming it; a path outside the folder, both keys, or a server without
    load_from is refused with vLLM's 400 body; a request without it passes untouched."""
    pytest.importorskip("fastapi", reason="fastapi comes with vLLM (CI runs this in .venv-ci-vllm)")
    from fastapi import FastAPI, Request
    from fastapi.testclient import TestClient

    from steerkit.vllm.runtime import SteeringSetsEndpoints

    folder = tmp_path / "sets"
    folder.mkdir()
    path_a, _ = _save(tmp_path, "a", 2, 0)
    _, vecs_b = _save(folder, "b", 2, 1)
    _save(tmp_path, "outside", 2, 2)
    w = World(tmp_path, {"a": path_a}, load_from=folder)
    plugin, app = SteeringSetsEndpoints(), FastAPI()

    @app.post("/v1/completions")
    async def echo(raw: Request):  # vLLM's route, as far as the middleware can tell
        return await raw.json()
    plugin.attach_router(app)
    plugin.control = w.control
    http = TestClient(app)
    xargs = {"steerkit_path": "b-1.safetensors", "steerkit_strength": [1.0, 0.5]}
    got = http.post("/v1/completions", json={"prompt": "hi", "vllm_xargs": xargs})
    assert got.status_code == 200
    assert got.json() == {"prompt": "hi", "vllm_xargs": {"steerkit_vectors": "path:b-1.safetensors",
                                                         "steerkit_strength": [1.0, 0.5]}}
    served = w.control.catalog.current()["path:b-1.safetensors"]
    extra = w.admit("r1", "path:b-1.safetensors", [1.0, 0.5])
    _steers_like(w.bank, extra, vecs_b, 3)
    # named again, by path or by name: the same copy, not loaded again
    assert http.post("/v1/completions", json={"vllm_xargs": {"steerkit_path": "./b-1.safetensors"}}).status_code == 200
    assert w.control.catalog.current()["path:b-1.safetensors"] == served
    plain = {"prompt": "no steering", "vllm_xargs": {"steerkit_vectors": "a"}}
    assert http.post("/v1/completions", json=plain).json() == plain
    for bad, words in [({"steerkit_path": "../outside-2.safetensors"}, "is not a file under the server's load_from"),
                       ({"steerkit_path": str(tmp_path / "outside-2.safetensors")}, "is not a file under"),
                       ({"steerkit_path": "b-1.txt"}, "expected a .safetensors or .gguf file"),
                       ({"steerkit_path": "missing.safetensors"}, "missing.safetensors"),
                       ({"steerkit_path": "b-1.safetensors", "steerkit_vectors": "a"}, "not both")]:
        r = http.post("/v1/completions", json={"prompt": "x", "vllm_xargs": bad})
        assert r.status_code == 400 and words in r.json()["error"]["message"], r.json()
        assert str(folder) not in r.json()["error"]["message"]  # the server's folders are not shown
    with pytest.raises(ValueError, match='name: expected a non-empty string without "@", not starting with "path:"'):
        w.run(w.control.load("path:x", path_a))

    # a server without load_from: the middleware passes the request on, and admission refuses the key
    w2 = World(tmp_path, {"a": path_a})
    plugin.control = w2.control
    assert http.post("/v1/completions", json={"vllm_xargs": {"steerkit_path": "b-1.safetensors"}}).json()[
        "vllm_xargs"] == {"steerkit_path": "b-1.safetensors"}
    with pytest.raises(ValueError, match="steerkit_path: this engine loads no steering set named by its path"):
        hooks.admit(w2.config, {"steerkit_path": "b-1.safetensors"})
    with pytest.raises(ValueError, match="steerkit_path: this server loads no steering set named by its path"):
        w2.run(w2.control.by_path("b-1.safetensors"))
