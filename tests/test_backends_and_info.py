"""Backend choice, overrides, `steerkit info`, and the build's CUDA switch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import steerkit
from steerkit import backends

ROOT = Path(__file__).resolve().parent.parent


def test_automatic_choice_on_cpu():
    steerkit.set_backend(None)
    h = torch.randn(2, 3)
    expected = "cpu" if backends.BACKENDS["cpu"].status()[0] else "reference"
    assert backends.select(h).NAME == expected
    assert backends.select(h.double()).NAME == expected


def test_set_backend_and_env_override(monkeypatch):
    h = torch.randn(2, 3)
    try:
        steerkit.set_backend("reference")
        assert steerkit.get_backend() == "reference" and backends.select(h).NAME == "reference"
    finally:
        steerkit.set_backend(None)
    monkeypatch.setenv("STEERKIT_BACKEND", "reference")
    assert backends.select(h).NAME == "reference"
    monkeypatch.setenv("STEERKIT_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="unknown backend 'nonsense'"):
        backends.select(h)


def test_bad_backend_names_and_forced_backend_that_cannot_run():
    with pytest.raises(ValueError, match="unknown backend"):
        steerkit.set_backend("metal")
    if not backends.BACKENDS["cuda"].status()[0]:
        pytest.skip("cuda extension not built here")
    try:
        steerkit.set_backend("cuda")
        with pytest.raises(RuntimeError, match="cannot run this input: it runs on cuda tensors"):
            steerkit.gated_steer(torch.randn(2, 3), torch.randn(1, 3))
    finally:
        steerkit.set_backend(None)


def test_info_lists_every_backend():
    facts = steerkit.info(print_it=False)
    assert set(facts["backends"]) == {"reference", "cpu", "cuda", "triton"}
    for b in facts["backends"].values():
        assert b["detail"], "every backend says its version or why it is missing"
    assert facts["backends"]["reference"]["available"]


def test_cli_info():
    out = subprocess.run([sys.executable, "-m", "steerkit.cli", "info", "--json"], capture_output=True,
                         text=True, check=True).stdout
    facts = json.loads(out)
    assert facts["torch"] == torch.__version__
    text = subprocess.run([sys.executable, "-m", "steerkit.cli", "info"], capture_output=True, text=True,
                          check=True).stdout
    assert "backends:" in text and "reference" in text


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree (setup.py)")
def test_build_with_cuda_forced_but_no_compiler_fails_clearly(tmp_path):
    env = dict(os.environ, STEERKIT_CUDA="1", CUDA_HOME=str(tmp_path / "no-cuda-here"))
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-temp", str(tmp_path / "t"),
         "--build-lib", str(tmp_path / "lib")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "STEERKIT_CUDA=1 but no CUDA compiler found" in proc.stdout + proc.stderr
