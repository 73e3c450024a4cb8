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
    assert backends.select("gated_steer", h).NAME == expected
    assert backends.select("gated_steer", h.double()).NAME == expected
    assert backends.select("two_gemm", h).NAME == "reference"  # no C++ GEMM: falls through


def test_set_backend_and_env_override(monkeypatch):
    h = torch.randn(2, 3)
    try:
        steerkit.set_backend("reference")
        assert steerkit.get_backend() == "reference" and backends.select("gated_steer", h).NAME == "reference"
    finally:
        steerkit.set_backend(None)
    monkeypatch.setenv("STEERKIT_BACKEND", "reference")
    assert backends.select("gated_steer", h).NAME == "reference"
    monkeypatch.setenv("STEERKIT_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="STEERKIT_BACKEND: unknown backend 'nonsense'"):
        backends.select("gated_steer", h)


def test_backend_spec_per_op():
    assert backends.parse("") == {} and backends.parse("auto") == {}
    assert backends.parse("triton") == {None: "triton"}
    assert backends.parse(" cuda , two_gemm=reference ") == {None: "cuda", "two_gemm": "reference"}
    with pytest.raises(ValueError, match="STEERKIT_BACKEND: unknown op 'gemm'"):
        backends.parse("gemm=reference")
    with pytest.raises(ValueError, match="STEERKIT_BACKEND: the default backend is given twice"):
        backends.parse("cpu,reference")
    with pytest.raises(ValueError, match="set_backend: unknown op 'gemm'"):
        steerkit.set_backend("reference", op="gemm")


def test_forcing_one_op_and_falling_through(monkeypatch):
    h = torch.randn(3, 4)
    cpu_ok = backends.status("cpu")[0]
    try:
        steerkit.set_backend("reference", op="gated_steer")
        assert backends.select("gated_steer", h).NAME == "reference"
        assert steerkit.get_backend() is None and steerkit.get_backend("gated_steer") == "reference"
        assert backends.select("steer_add_rmsnorm", h).NAME == ("cpu" if cpu_ok else "reference")
        steerkit.set_backend(None, op="gated_steer")
        assert backends.forced() == {}
        if cpu_ok:
            # the C++ backend has no two-GEMM kernel: forced onto it, that op takes the automatic order
            steerkit.set_backend("cpu")
            name, skipped = backends.route("two_gemm", "cpu", torch.float32)
            assert name == "reference" and skipped == ("cpu: forced, but it has no two_gemm kernel",)
            assert backends.info()["cpu"]["falls_through"] == {"two_gemm": "the automatic order"}
    finally:
        steerkit.set_backend(None)


def test_route_on_a_gpu_by_kernel_and_by_k(monkeypatch):
    """The automatic GPU order, worked out without a GPU: every backend reported available, Triton
    not interpreting. The CUDA kernels hold K <= MAX_K; beyond it the call goes to Triton, and a
    forced cuda refuses it. Its status is worked out once."""
    from steerkit.backends import cuda

    monkeypatch.setattr(backends, "status", lambda name: (True, "as if"))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(backends, "_routes", {})
    bf16 = torch.bfloat16
    assert backends.route("gated_steer", "cuda", bf16, 3) == ("cuda", ())
    big = cuda.MAX_K + 1
    name, skipped = backends.route("gated_steer", "cuda", bf16, big)
    assert name == "triton" and skipped == (f"cuda: K={big} attributes is more than its kernels hold in shared "
                                            f"memory (MAX_K={cuda.MAX_K})",)
    assert backends.route("two_gemm", "cuda", bf16) == ("triton", ("cuda: no two_gemm kernel",))
    assert backends.route("gated_steer", "cuda", torch.float64, 3)[0] == "reference"
    monkeypatch.setenv("STEERKIT_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match=f"'cuda' was forced but cannot run this input: K={big}"):
        backends.route("gated_steer", "cuda", bf16, big)
    assert backends.route("two_gemm", "cuda", bf16)[0] == "triton"


def test_backend_status_is_computed_once(monkeypatch):
    from steerkit.backends import reference

    backends.status.cache_clear()
    calls = []
    real = reference.status
    monkeypatch.setattr(reference, "status", lambda: calls.append(1) or real())
    for _ in range(3):
        backends.status("reference")
    assert calls == [1]
    backends.status.cache_clear()


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
    assert set(facts["routes"]["cpu"]) == set(backends.OPS)
    assert facts["routes"]["cpu"]["two_gemm"]["backend"] == "reference"
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
    assert "backends:" in text and "reference" in text and "ops on cpu" in text
    bad = subprocess.run([sys.executable, "-m", "steerkit.cli", "info"], capture_output=True, text=True,
                         env=dict(os.environ, STEERKIT_BACKEND="two_gemm=fast"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "STEERKIT_BACKEND: unknown backend 'fast'" in bad.stderr


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


def test_triton_backend_imports_wherever_triton_does():
    """A kernel module that fails to import would otherwise turn every Triton test into a skip."""
    pytest.importorskip("triton")
    ok, detail = backends.BACKENDS["triton"].status()
    assert ok, detail


@pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree (setup.py)")
def test_the_source_tree_has_one_top_level_package():
    """A top-level package beside steerkit shadows any PyPI package of that name for code run from the
    repo root: a top-level kernels/ once did, when transformers 5.25 began importing the `kernels` package."""
    assert [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()] == ["steerkit"]
