"""CPU benchmark of gated_steer: the C++ backend against the PyTorch reference (the math a forward
hook would run), forward and forward+backward, float32, same inputs in one run.

    python -m pytest benches/test_bench_gated_steer_cpu.py --benchmark-columns=median,iqr

Compare rows of the same shape; the ratio is the claim, never the absolute time.
"""
import pytest
import torch

import steerkit

SHAPES = [(512, 4096, 1), (512, 4096, 4), (512, 4096, 16), (4096, 1024, 4)]


@pytest.fixture(autouse=True)
def _restore_backend():
    yield
    steerkit.set_backend(None)


def _inputs(n, d, k):
    g = torch.Generator().manual_seed(n + d + k)
    h = torch.randn(n, d, generator=g)
    theta = torch.randn(k, d, generator=g) * 0.5
    w = torch.randn(k, d, generator=g) / d**0.5
    b = torch.randn(k, generator=g)
    s = torch.rand(n, k, generator=g)
    return h, theta, w, b, s


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-D{}-K{}".format(*s))
def test_forward(benchmark, backend, shape):
    steerkit.set_backend(backend)
    h, theta, w, b, s = _inputs(*shape)
    benchmark.group = "fwd " + "N{}-D{}-K{}".format(*shape)
    benchmark(lambda: steerkit.gated_steer(h, theta, w, b, s, norm_preserve=True, check_finite=False))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "N{}-D{}-K{}".format(*s))
def test_forward_backward(benchmark, backend, shape):
    steerkit.set_backend(backend)
    h, theta, w, b, s = _inputs(*shape)
    leaves = [t.requires_grad_() for t in (h, theta, w, s)]
    grad = torch.randn_like(h)
    benchmark.group = "fwd+bwd " + "N{}-D{}-K{}".format(*shape)

    def step():
        out = steerkit.gated_steer(leaves[0], leaves[1], leaves[2], b, leaves[3], norm_preserve=True,
                                   check_finite=False)
        torch.autograd.grad(out, leaves, grad)

    benchmark(step)
