"""`steerkit playground` without a browser: the session's checks and events, a page closed mid-stream, and
the CLI serving on loopback (its refusals come before the model loads)."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

from steerkit import cli
from steerkit.generate import compare

from test_cli_generate import _checkpoint
from test_gateview import PROMPTS, _tokenizer, _vectors
from tiny_models import tiny_model

pytest.importorskip("starlette", reason="the playground needs the [ui] extra (starlette, uvicorn)")
pytest.importorskip("uvicorn", reason="the playground needs the [ui] extra (starlette, uvicorn)")

from steerkit.playground import Playground  # noqa: E402


@pytest.fixture()
def playground():
    model = tiny_model("llama")
    return Playground(model, _tokenizer(), _vectors("block_out", 32), max_new_tokens=6)


def test_requests_are_checked_in_one_line(playground):
    ok = playground.check_request({"prompt": "w1", "strength": {"b": 2}, "max_new_tokens": 3})
    assert ok == ("w1", [0.0, 2.0], 3)
    for payload, message in (([], "request: expected a JSON object"), ({"prompt": " "}, "prompt: expected a non-empty"),
                             ({"prompt": "w1", "strength": {"c": 1}}, "strength: unknown attribute 'c'"),
                             ({"prompt": "w1", "strength": {"a": "x"}}, "the strength of 'a' must be a number"),
                             ({"prompt": "w1", "strength": [1.0]}, "strength: expected a number, a list of 2"),
                             ({"prompt": "w1", "strength": {"a": float("inf")}}, "NaN or Inf"),
                             ({"prompt": "w1", "max_new_tokens": 0}, "max_new_tokens: expected a whole number"),
                             ({"prompt": "w1", "max_new_tokens": 2.5}, "max_new_tokens: expected a whole number")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(")) as err:
            playground.check_request(payload)
        assert "\n" not in str(err.value)


def test_the_events_rebuild_generate_s_texts_and_the_gates_follow_each_token(playground):
    events = list(playground.stream(PROMPTS[0], [3.0, -1.0], 6))
    assert [e["type"] for e in events[:2]] == ["prompt", "token"] and events[-1]["type"] == "done"
    ((_, plain, steered),) = compare(playground.model, playground.tokenizer, playground.vectors, [PROMPTS[0]],
                                     strength=torch.tensor([3.0, -1.0]), max_new_tokens=6)
    assert events[-1]["texts"] == [plain, steered]
    for b, want in enumerate((plain, steered)):
        texts = [e["rows"][b]["text"] for e in events if e["type"] == "token" and e["rows"][b]["text"] is not None]
        assert "".join(texts).strip() == want
        gated = [e["rows"][b]["gates_of"] for e in events if e["type"] == "token" and e["rows"][b]["gates"]]
        assert gated == list(range(len(texts) - 1))  # each token's gates arrive with the next step
    assert len(events[0]["tokens"]) == len(events[0]["gates"][0]) == len(events[0]["gates"][1])


def test_a_closed_stream_stops_and_leaves_the_model_unpatched(playground):
    stream = playground.stream(PROMPTS[0], [3.0, 0.0], 6)
    next(stream), next(stream)
    stream.close()  # the page went away
    events = list(playground.stream(PROMPTS[1], [3.0, 0.0], 4))  # the next request runs
    assert events[-1]["type"] == "done"
    assert not getattr(playground.model, "_steerkit_patched", {})


def test_vectors_for_another_model_are_refused_and_the_old_ones_stay(playground, tmp_path):
    from steerkit import SteeringVectors

    SteeringVectors.from_tensors(torch.randn(1, 48), site="mlp_out", layer=0).save(tmp_path / "other.safetensors")
    before = playground.vectors
    with pytest.raises(ValueError, match="another model"):
        playground.set_vectors(tmp_path / "other.safetensors")
    assert playground.vectors is before
    with pytest.raises(ValueError, match="chat: this tokenizer has no chat template"):
        Playground(playground.model, playground.tokenizer, before, chat=True)


def test_cli_serves_on_loopback_and_refuses_before_loading(tmp_path, capsys):
    model, _ = _checkpoint(tmp_path)
    vecs = tmp_path / "g.safetensors"
    _vectors("block_out", 32).save(vecs)
    assert cli.main(["playground", "--model", str(tmp_path / "none"), "--vectors", str(vecs), "--port", "0"]) == 2
    assert "--port: expected 1 to 65535" in capsys.readouterr().err
    assert cli.main(["playground", "--model", str(tmp_path / "none"), "--vectors", str(tmp_path / "v.gguf")]) == 2
    assert "-vector file at" in capsys.readouterr().err
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "steerkit", "playground", "--model", str(model), "--vectors", str(vecs),
                             "--port", str(port), "--max-new-tokens", "5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline, info = time.time() + 120, None
        while info is None and time.time() < deadline and proc.poll() is None:
            try:
                info = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=5).read())
            except OSError:
                time.sleep(0.3)
        assert info is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert [a["name"] for a in info["attributes"]] == ["a", "b"] and info["max_new_tokens"] == 5
        assert info["vectors"] == str(vecs) and info["chat"] is False
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
        assert "<script>" in page and "http://" not in page and "https://" not in page  # nothing from elsewhere
    finally:
        proc.terminate()
        proc.wait(30)
