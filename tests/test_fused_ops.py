"""steer_add_rmsnorm and steer_linear against steerkit.reference evaluated in float64, on every
backend that runs here, outputs poisoned before the call; gradients where autograd needs them."""
import sys

import pytest
import torch

import steerkit
from steerkit import reference
from steerkit.backends._alloc import poisoned
from steerkit.ops import steer_add_rmsnorm, steer_linear
from steerkit.ops.steer_linear import fold

from conftest import TOL, rel_err, skip_unless_runnable

# (N, D, K, gated, per-row strength, norm_preserve, norm style)
NORM_CASES = [
    (0, 8, 1, True, True, False, "llama"),
    (1, 1, 1, False, False, False, "llama"),
    (3, 7, 2, True, True, True, "gemma"),
    (5, 64, 5, True, False, True, "none"),
    (33, 300, 3, True, True, True, "llama"),
    (17, 1000, 16, False, True, False, "gemma"),
    (64, 4096, 1, True, True, False, "llama"),
]
STYLES = {"llama": (0.0, True), "gemma": (1.0, False), "none": (0.0, True)}


def _norm_inputs(n, d, k, gated, rows, style, seed, strided=False):
    g = torch.Generator().manual_seed(seed)
    f = dict(dtype=torch.float64, generator=g)
    branch = torch.randn(n, 2 * d if strided else d, **f)[:, :d]  # a row stride that is not D
    residual = torch.randn(n, d, **f) * 3
    theta = torch.randn(k, d, **f) * 0.5
    gate_w = torch.randn(k, d, **f) / d**0.5 if gated else None
    gate_b = torch.randn(k, **f) if gated else None
    strength = torch.rand(n, k, **f) * 2 - 0.5 if rows else torch.randn(k, **f)
    weight = None if style == "none" else 1 + 0.1 * torch.randn(d, **f)
    return branch, residual, theta, gate_w, gate_b, strength, weight


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["reference", "cpu", "triton", "cuda"])
@pytest.mark.parametrize("case", NORM_CASES, ids=lambda c: "N{}-D{}-K{}-{}".format(c[0], c[1], c[2], c[6]))
def test_steer_add_rmsnorm_matches_the_reference(backend, dtype, case, use_backend):
    device = skip_unless_runnable(backend, dtype)
    use_backend(backend)
    n, d, k, gated, rows, norm_preserve, style = case
    args = _norm_inputs(n, d, k, gated, rows, style, seed=n * 31 + d, strided=n % 2 == 1)
    offset, cast = STYLES[style]
    want_res, want_norm = reference.steer_add_rmsnorm(*args[:6], norm_preserve, args[6], 1e-6, offset, cast)
    low = [t.to(device=device, dtype=dtype if t.dtype == torch.float64 and i not in (4, 5) else torch.float32)
           if t is not None else None for i, t in enumerate(args)]
    with poisoned():
        got_res, got_norm = steer_add_rmsnorm(*low[:6], norm_preserve, low[6], 1e-6, offset, cast)
    assert got_res.dtype == dtype and got_res.shape == (n, d)
    if n:
        assert rel_err(got_res, want_res) <= TOL[dtype]
    if style == "none":
        assert got_norm is None
    elif n:
        assert rel_err(got_norm, want_norm) <= TOL[dtype]


def test_steer_add_rmsnorm_gradients_equal_the_reference():
    """With inputs that need gradients the op runs as the differentiable composition."""
    args = _norm_inputs(6, 24, 3, True, True, "llama", seed=1)
    leaves = [t.clone().requires_grad_() for t in args]
    mine = [t.clone().requires_grad_() for t in args]
    grad_res, grad_norm = torch.randn(6, 24, dtype=torch.float64), torch.randn(6, 24, dtype=torch.float64)
    r1, n1 = reference.steer_add_rmsnorm(*leaves[:6], True, leaves[6], 1e-6)
    r2, n2 = steer_add_rmsnorm(*mine[:6], True, mine[6], 1e-6)
    torch.autograd.backward([r1, n1], [grad_res, grad_norm])
    torch.autograd.backward([r2, n2], [grad_res, grad_norm])
    for a, b in zip(leaves, mine):
        assert rel_err(b.grad, a.grad) < 1e-10


def test_steer_add_rmsnorm_names_the_bad_argument():
    b, r, th, w, gb, s, nw = _norm_inputs(4, 8, 2, True, False, "llama", seed=2)
    with pytest.raises(ValueError, match="residual must be a tensor of branch's shape"):
        steer_add_rmsnorm(b, r[:, :4], th, w, gb, s)
    with pytest.raises(ValueError, match="residual must be of branch's dtype"):
        steer_add_rmsnorm(b, r.float(), th, w, gb, s)
    with pytest.raises(ValueError, match=r"norm_weight must be a \[D=8\] tensor"):
        steer_add_rmsnorm(b, r, th, w, gb, s, norm_weight=nw[:5])
    with pytest.raises(ValueError, match="norm_weight must be of branch's dtype"):
        steer_add_rmsnorm(b, r, th, w, gb, s, norm_weight=nw.float())
    with pytest.raises(ValueError, match="steer_add_rmsnorm: theta must be"):
        steer_add_rmsnorm(b, r, th[:, :3], w, gb, s)
    with pytest.raises(ValueError, match="steer_add_rmsnorm: theta contains NaN"):
        steer_add_rmsnorm(b, r, th * float("nan"), w, gb, s)


# -- steer_linear: steering folded through a projection --------------------------------------------

LINEAR_CASES = [(0, 8, 4, 1), (1, 5, 7, 1), (9, 40, 24, 3), (70, 96, 130, 16)]


def _linear_inputs(n, d, out, k, seed):
    g = torch.Generator().manual_seed(seed)
    f = dict(dtype=torch.float64, generator=g)
    return (torch.randn(n, d, **f), torch.randn(out, d, **f) / d**0.5, torch.randn(out, **f),
            torch.randn(k, d, **f) * 0.5, torch.randn(k, d, **f) / d**0.5, torch.randn(k, **f),
            torch.rand(n, k, **f) * 2 - 0.5)


@pytest.mark.parametrize("norm_preserve", [False, True])
@pytest.mark.parametrize("variant", ["gated", "plain", "no_bias"])
@pytest.mark.parametrize("case", LINEAR_CASES, ids=lambda c: "N{}-D{}-O{}-K{}".format(*c))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_steer_linear_equals_steering_before_the_projection(case, variant, norm_preserve, dtype):
    a, w, b, th, gw, gb, s = _linear_inputs(*case, seed=sum(case))
    if variant == "plain":
        gw = gb = None
    if variant == "no_bias":
        b = None
    want = reference.steer_then_linear(a, w, b, th, gw, gb, s, norm_preserve)
    low = [t.to(dtype) if t is not None and i < 5 else t for i, t in enumerate((a, w, b, th, gw, gb, s))]
    got = steer_linear(*low, norm_preserve=norm_preserve, folded=fold(low[1], low[3]))
    assert got.shape == want.shape and got.dtype == dtype
    if case[0]:
        assert rel_err(got, want) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("norm_preserve", [False, True])
def test_steer_linear_on_the_triton_gemm_matches_the_reference(dtype, norm_preserve, use_backend, monkeypatch):
    skip_unless_runnable("triton", dtype)
    use_backend("triton")
    kernel = sys.modules["steerkit.kernels.two_gemm"]
    real, calls = kernel.two_gemm, []
    monkeypatch.setattr(kernel, "two_gemm", lambda *a, **k: calls.append(1) or real(*a, **k))
    a, w, b, th, gw, gb, s = _linear_inputs(37, 40, 72, 3, seed=5)
    want = reference.steer_then_linear(a, w, b, th, gw, gb, s, norm_preserve)
    low = [t.to(dtype) for t in (a, w, b, th, gw)]
    with torch.no_grad():
        got = steer_linear(*low, gb.float(), s.float(), norm_preserve)
    assert len(calls) == 2  # the skinny gate GEMM and the projection with its epilogue
    assert rel_err(got, want) <= TOL[dtype]


def test_steer_linear_gradients_pass_gradcheck():
    a, w, b, th, gw, gb, s = (t[:4] if i in (0, 6) else t for i, t in enumerate(_linear_inputs(4, 6, 5, 2, seed=7)))
    leaves = [t.clone().requires_grad_() for t in (a, th, gw, gb, s)]
    torch.autograd.gradcheck(
        lambda a_, th_, gw_, gb_, s_: steer_linear(a_, w, b, th_, gw_, gb_, s_, True, check_finite=False), leaves)


def test_steer_linear_names_the_bad_argument():
    a, w, b, th, gw, gb, s = _linear_inputs(3, 8, 5, 2, seed=9)
    with pytest.raises(ValueError, match=r"steer_linear: weight must be a \[out, D=8\] tensor"):
        steer_linear(a, w[:, :4], b, th, gw, gb, s)
    with pytest.raises(ValueError, match="weight must be of a's dtype"):
        steer_linear(a, w.float(), b, th, gw, gb, s)
    with pytest.raises(ValueError, match=r"bias must be a \[out=5\] tensor"):
        steer_linear(a, w, b[:2], th, gw, gb, s)
    with pytest.raises(ValueError, match=r"folded must be fold\(weight, theta\) of shape \[2, 5\]"):
        steer_linear(a, w, b, th, gw, gb, s, folded=torch.zeros(5, 2, dtype=torch.float64))


def test_steer_linear_takes_its_gemm_from_the_registry(monkeypatch, use_backend):
    """One registry for every op: forcing the two-GEMM op alone onto the reference keeps the projection on
    torch's GEMM while gated_steer stays forced onto triton; the same result either way."""
    skip_unless_runnable("triton", torch.float32)
    kernel = sys.modules["steerkit.kernels.two_gemm"]
    calls = []
    real = kernel.two_gemm
    monkeypatch.setattr(kernel, "two_gemm", lambda *a, **k: calls.append(1) or real(*a, **k))
    a, w, b, th, gw, gb, s = (t.float() for t in _linear_inputs(5, 16, 8, 2, seed=13))
    want = reference.steer_then_linear(a, w, b, th, gw, gb, s, True)
    use_backend("triton")
    with torch.no_grad():
        y = steer_linear(a, w, b, th, gw, gb, s, True)
    assert len(calls) == 2 and rel_err(y, want) < 1e-5  # the coefficients' GEMM and the projection
    calls.clear()
    steerkit.set_backend("reference", op="two_gemm")
    assert steerkit.get_backend("two_gemm") == "reference" and steerkit.get_backend("gated_steer") == "triton"
    with torch.no_grad():
        y = steer_linear(a, w, b, th, gw, gb, s, True)
    assert calls == [] and rel_err(y, want) < 1e-5

@pytest.mark.parametrize("on_host", [True, False], ids=["host-check", "always-direct"])
def test_steer_linear_norm_identity_is_guarded_where_the_steer_nearly_annuls_a_row(on_host, monkeypatch):
    """Rows a = α v + δ (‖δ‖ ≈ 1e-3 ‖a‖) steered by -α v: the identity ‖a‖² + 2c(a·θ) + c²‖θ‖² loses
    ~6 digits in float32, so its row scale ‖a‖/‖a + cθ‖ is off by percents; the guard sums those rows'
    norm directly. Both forms of the guard (a host check on the CPU; always-direct on a GPU or under
    compile) give the float64 row scale to 1e-4."""
    sl = sys.modules["steerkit.ops.steer_linear"]  # (steerkit.ops.steer_linear is also the op's name)
    monkeypatch.setattr(sl, "_checks_on_host", lambda x: on_host)
    g = torch.Generator().manual_seed(3)
    d, n = 256, 12
    v = torch.randn(d, generator=g, dtype=torch.float64)
    alpha = torch.rand(n, 1, generator=g, dtype=torch.float64) * 3 + 1
    a = alpha * v + torch.randn(n, d, generator=g, dtype=torch.float64) * 1e-3 * v.norm() / d**0.5
    a[: n // 2] = torch.randn(n // 2, d, generator=g, dtype=torch.float64) * 3  # and rows far from annulled
    s = -alpha.clone()
    s[: n // 2] = 0.3
    th = v[None, :]
    want_r = a.norm(dim=-1) / (a + s * th).norm(dim=-1)
    _, r = sl._coefficients(a.float(), th.float(), None, None, s.float(), True, reference.two_gemm)
    assert ((r.double() - want_r).abs() / want_r).max() < 1e-4
    # the inputs do cancel: the identity alone is off by far more
    af, tf, sf = a.float(), th.float(), s.float()
    sq = af.norm(dim=-1).square()
    nu2 = sq + 2 * (sf * (af @ tf.t())).sum(-1) + (sf * sf * tf.square().sum()).sum(-1)
    ident = sq.sqrt() / nu2.clamp_min(0).sqrt().clamp_min(1e-8)
    assert ((ident.double() - want_r).abs() / want_r)[n // 2:].max() > 1e-2
    # and the whole op follows the float64 reference as far as its fold's own rounding allows
    w = torch.randn(40, d, generator=g, dtype=torch.float64) / d**0.5
    got = steer_linear(a.float(), w.float(), None, th.float(), strength=s.float(), norm_preserve=True)
    ref = reference.steer_then_linear(a, w, None, th, None, None, s, True)
    assert rel_err(got, ref) < 1e-3
