"""Shared test helpers. Without a GPU the Triton kernels run under the interpreter, which must be
switched on before triton or steerkit is imported."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import steerkit  # noqa: E402
from steerkit import backends  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float64: 1e-10}


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double().cpu(), ref.double().cpu()
    assert not torch.isnan(out).any(), "NaN in output (an unwritten element?)"
    denom = ref.norm().item()
    diff = (out - ref).norm().item()
    return diff / denom if denom > 0 else diff


def backend_device(name: str) -> str:
    """Where a backend's inputs live in this run: the GPU for cuda/triton when there is one."""
    if name == "cuda" or (name == "triton" and HAS_CUDA):
        return "cuda"
    return "cpu"


def skip_unless_runnable(name: str, dtype: torch.dtype) -> str:
    """The device to test backend ``name`` on, or a pytest skip saying why it cannot run here."""
    ok, detail = backends.BACKENDS[name].status()
    if not ok:
        pytest.skip(f"backend {name} not available: {detail}")
    device = backend_device(name)
    if device == "cuda" and not HAS_CUDA:
        pytest.skip(f"backend {name} needs a CUDA GPU and none is visible")
    why = backends.BACKENDS[name].supports(device, dtype)
    if why is not None:
        pytest.skip(f"backend {name} on {device}: {why}")
    return device


@pytest.fixture
def use_backend():
    """Force a backend for one test, restoring automatic choice afterwards."""
    def _use(name):
        steerkit.set_backend(name)
    yield _use
    steerkit.set_backend(None)
