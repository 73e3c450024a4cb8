"""torch.library.opcheck on every steerkit custom op, on every backend that runs here: the schema,
the fake (meta) implementation against the real kernel, and dispatch under torch.compile's tracing.
An op a backend has no kernel for falls through (the registry's rule), so that pair is skipped."""
import pytest
import torch

from steerkit import backends
from steerkit.ops.gated_steer import _gated_steer_bwd_rows, _gated_steer_fwd

from conftest import skip_unless_runnable

BACKENDS = ["reference", "cpu", "triton", "cuda"]


def _steer_args(device, gated, rows, n=5, d=9, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    kw = dict(dtype=torch.float32, generator=g)
    h, theta = torch.randn(n, d, **kw), torch.randn(k, d, **kw)
    w = torch.randn(k, d, **kw) / d**0.5 if gated else None
    b = torch.randn(k, **kw) if gated else None
    s = torch.rand(n, k, **kw) if rows else torch.rand(k, **kw)
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return [move(t) for t in (h, theta, w, b, s)]


def _runnable(backend, op):
    device = skip_unless_runnable(backend, torch.float32)
    if not backends.implements(backend, op):
        pytest.skip(f"backend {backend} has no {op} kernel (calls forced onto it fall through)")
    return device


@pytest.mark.parametrize("backend", BACKENDS)
def test_gated_steer_ops(backend, use_backend):
    device = _runnable(backend, "gated_steer")
    use_backend(backend)
    for gated in (False, True):
        for rows in (False, True):
            for np_ in (False, True):
                h, theta, w, b, s = _steer_args(device, gated, rows)
                torch.library.opcheck(_gated_steer_fwd, (h.requires_grad_(), theta.requires_grad_(), w, b,
                                                         s.requires_grad_(), np_))
                with torch.no_grad():
                    _, gates, norms = _gated_steer_fwd(h, theta, w, b, s, np_)
                gram = theta.detach() @ theta.detach().T
                torch.library.opcheck(_gated_steer_bwd_rows, (torch.randn_like(h), h.detach(), theta.detach(), w,
                                                              s.detach(), gates, norms, gram, np_))


@pytest.mark.parametrize("backend", BACKENDS)
def test_steer_add_rmsnorm_op(backend, use_backend):
    device = _runnable(backend, "steer_add_rmsnorm")
    use_backend(backend)
    op = torch.ops.steerkit.steer_add_rmsnorm_fwd.default
    h, theta, w, b, s = _steer_args(device, True, True, d=16)
    residual, norm_w = torch.randn_like(h), 1 + 0.1 * torch.randn(16, device=device)
    torch.library.opcheck(op, (h, residual, theta, w, b, s, True, norm_w, 1e-6, 0.0, True))
    torch.library.opcheck(op, (h, residual, theta, None, None, s, False, None, 1e-6, 1.0, False))


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_gemm_op(backend, use_backend):
    device = _runnable(backend, "two_gemm")
    use_backend(backend)
    g = torch.Generator().manual_seed(11)
    x1, y1 = torch.randn(9, 20, generator=g), torch.randn(30, 20, generator=g).t()
    x2, y2 = torch.randn(9, 3, generator=g), torch.randn(3, 30, generator=g)
    bias, scale = torch.randn(30, generator=g), torch.rand(9, generator=g)
    x1, y1, x2, y2, bias, scale = (t.to(device) for t in (x1, y1, x2, y2, bias, scale))
    op = torch.ops.steerkit.two_gemm.default
    torch.library.opcheck(op, (x1, y1, x2, y2, bias, scale, None))
    torch.library.opcheck(op, (x1, y1, None, None, bias, None, None))
    torch.library.opcheck(op, (x1, y1, None, None, None, None, torch.float64))
    got = op(x1, y1, x2, y2, bias, scale, None)
    assert torch.allclose(got, scale[:, None] * (x1 @ y1 + x2 @ y2) + bias, rtol=1e-5, atol=1e-5)
