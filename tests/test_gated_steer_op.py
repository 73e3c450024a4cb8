"""The gated_steer op beyond numerical parity: gradcheck of the reference (opcheck: test_opcheck.py),
torch.compile, input validation, edge rows, layouts and gradients through the returned gates."""
import pytest
import torch

import steerkit
from steerkit import reference

from conftest import rel_err, skip_unless_runnable


def _params(n=4, d=6, k=3, dtype=torch.float64, gated=True, rows=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    kw = dict(dtype=dtype, generator=g)
    h = torch.randn(n, d, **kw)
    theta = torch.randn(k, d, **kw)
    w = torch.randn(k, d, **kw) / d**0.5 if gated else None
    b = torch.randn(k, **kw) if gated else None
    s = torch.randn(n, k, **kw) if rows else torch.randn(k, **kw)
    return h, theta, w, b, s


@pytest.mark.parametrize("norm_preserve", [False, True])
@pytest.mark.parametrize("gated", [False, True])
@pytest.mark.parametrize("rows", [False, True])
def test_reference_gradcheck(norm_preserve, gated, rows):
    args = [t.requires_grad_() if t is not None else None for t in _params(gated=gated, rows=rows)]
    f = lambda *a: reference.gated_steer(*a, norm_preserve=norm_preserve)  # noqa: E731
    assert torch.autograd.gradcheck(f, tuple(args))


def test_op_grads_match_reference_in_float64(use_backend):
    """The op's hand-written backward (row kernel + shared reductions) against autograd through the
    reference, in float64 where both are exact to rounding."""
    for backend in ("reference", "cpu"):
        use_backend(backend)
        for np_ in (False, True):
            args = [t.requires_grad_() for t in _params(n=7, d=11, k=3)]
            out = steerkit.gated_steer(*args, norm_preserve=np_)
            grads = torch.autograd.grad(out.sin().sum(), args)
            ref_args = [t.detach().clone().requires_grad_() for t in args]
            ref_out, _ = reference.gated_steer(*ref_args, norm_preserve=np_)
            ref_grads = torch.autograd.grad(ref_out.sin().sum(), ref_args)
            for got, want in zip(grads, ref_grads):
                assert rel_err(got, want) < 1e-12


def test_compile_fullgraph_forward_and_backward():
    h, theta, w, b, s = _params(n=8, d=16, k=2, dtype=torch.float32)
    theta.requires_grad_()

    def f(h, theta, w, b, s):
        out, gates = steerkit.gated_steer(h, theta, w, b, s, norm_preserve=True, return_gates=True)
        return out.sum() + gates.sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    eager = f(h, theta, w, b, s)
    got = compiled(h, theta, w, b, s)
    assert torch.allclose(got, eager, rtol=1e-5, atol=1e-5)
    (g_eager,) = torch.autograd.grad(eager, theta)
    (g_comp,) = torch.autograd.grad(compiled(h, theta, w, b, s), theta)
    assert rel_err(g_comp, g_eager) < 1e-5


def test_compile_inductor_fullgraph():
    h, theta, w, b, s = _params(n=8, d=16, k=2, dtype=torch.float32)
    f = torch.compile(lambda h: steerkit.gated_steer(h * 2, theta, w, b, s) + 1, fullgraph=True)
    assert torch.allclose(f(h), steerkit.gated_steer(h * 2, theta, w, b, s) + 1, rtol=1e-5, atol=1e-6)


def test_gradients_through_returned_gates():
    args = [t.requires_grad_() for t in _params(n=5, d=8, k=2)]
    out, gates = steerkit.gated_steer(*args, norm_preserve=True, return_gates=True)
    loss = out.sin().sum() + (gates**2).sum()
    grads = torch.autograd.grad(loss, args)
    ref_args = [t.detach().clone().requires_grad_() for t in args]
    r_out, r_gates = reference.gated_steer(*ref_args, norm_preserve=True)
    ref_grads = torch.autograd.grad(r_out.sin().sum() + (r_gates**2).sum(), ref_args)
    for got, want in zip(grads, ref_grads):
        assert rel_err(got, want) < 1e-12


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
def test_norm_preserve_guard_rows(backend, use_backend):
    """A row steered to exactly zero stays unscaled (no NaN); a zero row gets scaled to zero."""
    device = skip_unless_runnable(backend, torch.float32)
    use_backend(backend)
    theta = torch.tensor([[1.0, -2.0, 0.5, 3.0]], device=device)
    h = torch.stack([-2.0 * theta[0], torch.zeros(4, device=device),
                     torch.ones(4, device=device)]).requires_grad_()
    th = theta.clone().requires_grad_()
    s = torch.tensor([2.0], device=device)
    out = steerkit.gated_steer(h, th, strength=s, norm_preserve=True)
    assert torch.equal(out[0].cpu(), torch.zeros(4)), "u == 0: left unscaled"
    assert torch.equal(out[1].cpu(), torch.zeros(4)), "‖h‖ == 0: scaled to zero"
    want = h[2] + 2 * theta[0]
    assert torch.allclose(out[2], want * (2.0 / want.norm()), atol=1e-6)
    out.sum().backward()
    assert torch.isfinite(h.grad).all() and torch.isfinite(th.grad).all()
    ref_h, ref_t = h.detach().cpu().double().requires_grad_(), theta.cpu().double().requires_grad_()
    reference.gated_steer(ref_h, ref_t, None, None, s.cpu().double(), True)[0].sum().backward()
    assert rel_err(h.grad, ref_h.grad) < 1e-5 and rel_err(th.grad, ref_t.grad) < 1e-5


def test_layouts_and_strength_forms():
    h, theta, w, b, _ = _params(n=6, d=10, k=3, dtype=torch.float32)
    big = torch.randn(10, 12)
    strided = big.T[:, :10]  # [12, 10] with column stride 12: not contiguous
    assert not strided.is_contiguous()
    out = steerkit.gated_steer(strided, theta, w, b, 0.7)
    assert torch.equal(out, steerkit.gated_steer(strided.contiguous(), theta, w, b, 0.7))
    rows_view = torch.randn(12, 20)[:, :10]  # row stride 20, unit column stride: passed as is
    assert torch.equal(steerkit.gated_steer(rows_view, theta, w, b, 0.7),
                       steerkit.gated_steer(rows_view.contiguous(), theta, w, b, 0.7))
    # [B,T,D] with a per-token [B,T,K] strength equals the flattened call
    h3 = torch.randn(2, 5, 10)
    s3 = torch.rand(2, 5, 3)
    out3, g3 = steerkit.gated_steer(h3, theta, w, b, s3, return_gates=True)
    out2 = steerkit.gated_steer(h3.reshape(10, 10), theta, w, b, s3.reshape(10, 3))
    assert out3.shape == (2, 5, 10) and g3.shape == (2, 5, 3)
    assert torch.equal(out3.reshape(10, 10), out2)
    # float, 0-d and [K] strengths agree
    a = steerkit.gated_steer(h, theta, w, b, 0.5)
    assert torch.equal(a, steerkit.gated_steer(h, theta, w, b, torch.tensor(0.5)))
    assert torch.equal(a, steerkit.gated_steer(h, theta, w, b, torch.full((3,), 0.5)))
    # strength 0 is the identity, bit for bit
    assert torch.equal(steerkit.gated_steer(h, theta, w, b, 0.0), h)


def test_empty_input():
    _, theta, w, b, _ = _params(k=2, d=6, dtype=torch.float32)
    out, gates = steerkit.gated_steer(torch.empty(0, 6), theta, w, b, 1.0, return_gates=True)
    assert out.shape == (0, 6) and gates.shape == (0, 2)
    out = steerkit.gated_steer(torch.empty(2, 0, 6), theta, w, b, 1.0)
    assert out.shape == (2, 0, 6)


@pytest.mark.parametrize("mutate, arg, fragment", [
    (lambda a: a.update(h=a["h"].long()), "h", "float32, float16"),
    (lambda a: a.update(theta=a["theta"][:, :5]), "theta", "of shape [3, 6]"),
    (lambda a: a.update(theta=a["theta"].double()), "theta", "h's dtype"),
    (lambda a: a.update(theta=torch.randn(6)), "theta", "[K, D]"),
    (lambda a: a.update(gate_w=a["gate_w"][:2]), "gate_w", "of shape [3, 6]"),
    (lambda a: a.update(gate_w=a["gate_w"].half()), "gate_w", "h's dtype"),
    (lambda a: a.update(gate_b=torch.randn(4)), "gate_b", "of shape [3]"),
    (lambda a: a.update(gate_w=None), "gate_b", "None when gate_w is None"),
    (lambda a: a.update(strength=torch.randn(4, 2)), "strength", "per-row"),
    (lambda a: a.update(strength="strong"), "strength", "a float or a tensor"),
    (lambda a: a.update(gate_w=a["gate_w"].to("meta")), "gate_w", "device"),
])
def test_validation_names_the_argument(mutate, arg, fragment):
    h, theta, w, b, _ = _params(n=4, d=6, k=3, dtype=torch.float32)
    kwargs = dict(h=h, theta=theta, gate_w=w, gate_b=b, strength=torch.rand(4, 3))
    mutate(kwargs)
    with pytest.raises(ValueError, match=arg) as err:
        steerkit.gated_steer(**kwargs)
    assert fragment in str(err.value)


@pytest.mark.parametrize("name", ["theta", "gate_w", "gate_b"])
def test_non_finite_parameters_raise(name):
    h, theta, w, b, s = _params(n=4, d=6, k=3, dtype=torch.float32)
    kwargs = dict(theta=theta, gate_w=w, gate_b=b)
    kwargs[name] = kwargs[name].clone()
    kwargs[name].view(-1)[1] = float("nan") if name != "gate_b" else float("inf")
    with pytest.raises(ValueError, match=f"{name} contains NaN or Inf"):
        steerkit.gated_steer(h, strength=s, **kwargs)
    steerkit.gated_steer(h, strength=s, check_finite=False, **kwargs)  # opt-out for hot paths


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_direct_route_equals_the_custom_op_route(backend, use_backend, monkeypatch):
    """Eager calls on plain tensors skip the torch.library dispatch and call the backend directly; the
    op route (what torch.compile traces) must give the same bits, forward and backward."""
    import importlib

    from steerkit.ops import steer_add_rmsnorm, steer_linear

    op_module = importlib.import_module("steerkit.ops.gated_steer")

    skip_unless_runnable(backend, torch.float32)
    use_backend(backend)

    def run():
        h, theta, w, b, s = (t.float().requires_grad_() for t in _params(n=6, d=10, k=3, seed=4))
        out, gates = steerkit.gated_steer(h, theta, w, b, s, norm_preserve=True, return_gates=True)
        grads = torch.autograd.grad((out.sin().sum() + gates.square().sum()), (h, theta, w, b, s))
        with torch.no_grad():
            fused = steer_add_rmsnorm(h, h.cos(), theta, w, b, s, True, torch.ones(10), 1e-6)
            lin = steer_linear(h, torch.eye(7, 10), torch.ones(7), theta, w, b, s, True)
        return [out, gates, *grads, *fused, lin]

    direct = run()
    monkeypatch.setattr(op_module, "compiling", lambda: True)
    assert not op_module.direct(torch.zeros(1))
    through_op = run()
    for a, b in zip(direct, through_op):
        assert torch.equal(a, b)


def test_meta_tensors_take_the_op_route():
    h, theta, w, b, s = (t.to("meta") for t in _params(n=3, d=8, k=2, dtype=torch.float32))
    out, gates = steerkit.gated_steer(h, theta, w, b, s, return_gates=True, check_finite=False)
    assert out.device.type == "meta" and out.shape == (3, 8) and gates.shape == (3, 2)


def test_transforms_never_take_the_direct_route():
    """Inside vmap or forward-mode AD the tensors look plain; the direct route would hand the kernel the
    unbatched data or drop the tangent, silently. They go through the op, which refuses what it lacks."""
    import importlib

    from torch.autograd import forward_ad

    op_module = importlib.import_module("steerkit.ops.gated_steer")
    h, theta, w, b, s = _params(n=3, d=5, k=2, dtype=torch.float32)
    seen = []
    torch.func.vmap(lambda x: seen.append(op_module.direct(x)) or x)(h)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(h, torch.ones_like(h))
        seen.append(op_module.direct(dual))
        # no forward-mode formula: an error, never an answer without its tangent
        with pytest.raises(ValueError, match="gated_steer: forward-mode AD .* is not supported"):
            steerkit.gated_steer(dual, theta, w, b, s, check_finite=False)
    assert seen == [False, False] and op_module.direct(h)
    with pytest.raises(Exception):  # the op has no batching rule: vmap refuses rather than mixing rows
        torch.func.vmap(lambda x: steerkit.gated_steer(x, theta, w, b, s, check_finite=False))(h[:, None, :])
