"""Every backend's gated_steer against steerkit.reference evaluated in float64: outputs, gates and
all five gradients, on fresh random inputs, with every kernel output poisoned before the call."""
import itertools

import pytest
import torch

import steerkit
from steerkit import reference
from steerkit.backends._alloc import poisoned

from conftest import TOL, rel_err, skip_unless_runnable

DS = [1, 7, 64, 1000, 4096, 5120]
NS_SMALL = [0, 1, 3, 257]
KS = [1, 2, 5, 16]
GATES = ["gated", "gated_nobias", "none"]


def _cases():
    """Every (D, K) pair, rotating N, gate mode, strength kind and norm preservation over them so each
    value of each meets the others; then the large-N cases."""
    cases = []
    for i, (d, k) in enumerate(itertools.product(DS, KS)):
        n = NS_SMALL[i % len(NS_SMALL)]
        cases.append((n, d, k, GATES[i % 3], ("rows", "attr")[(i // 2) % 2], bool((i // 4) % 2)))
    cases += [
        (4096, 64, 5, "gated", "rows", True),
        (4096, 1000, 2, "none", "attr", False),
        (4096, 5120, 16, "gated", "rows", True),
        (4096, 4096, 1, "gated", "attr", False),
    ]
    return cases


CASES = _cases()
HEAVY = {(n, d) for n, d, *_ in CASES if n * d > 4096 * 1000}


def _inputs(n, d, k, gates, strength_kind, seed):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=g)
    h = torch.randn(n, d, **f64)
    theta = torch.randn(k, d, **f64) * 0.5  # each vector about half of ‖h‖
    gate_w = torch.randn(k, d, **f64) / d**0.5 if gates != "none" else None
    gate_b = torch.randn(k, **f64) if gates == "gated" else None
    strength = (torch.rand(n, k, **f64) * 2 - 0.5) if strength_kind == "rows" else torch.randn(k, **f64)
    grad = torch.randn(n, d, **f64)
    return h, theta, gate_w, gate_b, strength, grad


def _reference_grads(h, theta, gate_w, gate_b, strength, grad, norm_preserve):
    """Output, gates and the five gradients, in float64; plus, for the [K] leaves whose gradient is a
    sum over the N rows (gate_b, a per-attribute strength, and theta and gate_w), the norm of the per-row terms. A sum's
    rounding error scales with its terms, not with the sum: K=1 and N=4096 makes one scalar of 4096
    terms whose cancellation can leave it far smaller than they are. Those leaves are given one copy
    per row, so one backward yields both the terms and (summed) the gradient."""
    n = h.shape[0]
    per_row = {i for i, t in ((3, gate_b), (4, strength)) if t is not None and t.dim() == 1 and n > 0}
    leaves = [None if t is None else (t.expand(n, -1) if i in per_row else t).clone().requires_grad_()
              for i, t in enumerate((h, theta, gate_w, gate_b, strength))]
    out, gates = reference.gated_steer(*leaves, norm_preserve=norm_preserve)
    used = [t for t in leaves if t is not None]
    grads = torch.autograd.grad((out * grad).sum(), used, allow_unused=True) if out.numel() else [None] * len(used)
    it = iter(grads)
    grads = [next(it) if t is not None else None for t in leaves]
    summands = {("gate_b", "strength")[i - 3]: grads[i].norm().item() for i in per_row}
    if n > 0:
        # theta's and gate_w's gradients are sums over the N rows too; with D small (D=1: K scalar sums)
        # they cancel as gate_b's do. Their terms' size, without the norm-preserving rescale (about 1):
        # row n adds c_nk·grad_n to θ_k and dz_nk·h_n to w_k
        g = gates.detach()
        c = strength.detach().expand(n, -1) * g
        summands["theta"] = float(((c * c) * (grad * grad).sum(1, keepdim=True)).sum().sqrt())
        if gate_w is not None:
            dz = (grad @ theta.T) * strength.detach().expand(n, -1) * g * (1 - g)
            summands["gate_w"] = float(((dz * dz) * (h * h).sum(1, keepdim=True)).sum().sqrt())
    grads = [g.sum(0) if i in per_row else g for i, g in enumerate(grads)]
    return out.detach(), gates.detach(), grads, summands


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["reference", "cpu", "triton", "cuda"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "N{}-D{}-K{}-{}-{}-{}".format(*c[:5], "np" if c[5] else "raw"))
def test_matches_reference(backend, dtype, case, use_backend, request):
    n, d, k, gates_mode, strength_kind, norm_preserve = case
    device = skip_unless_runnable(backend, dtype)
    if backend == "triton" and device == "cpu" and (n, d) in HEAVY and dtype != torch.float32:
        pytest.skip("interpreter: the heaviest shapes run in float32 only, to keep the suite fast")
    seed = hash((request.node.name, torch.initial_seed())) % 2**31  # fresh inputs per test
    h64, th64, w64, b64, s64, g64 = _inputs(n, d, k, gates_mode, strength_kind, seed)
    # The reference sees exactly the values the kernel sees: inputs rounded to the test dtype.
    h64, th64, w64, g64 = [t.to(dtype).double() if t is not None else t for t in (h64, th64, w64, g64)]
    ref_out, ref_gates, ref_grads, summands = _reference_grads(h64, th64, w64, b64, s64, g64, norm_preserve)

    use_backend(backend)
    cast = lambda t, dt=dtype: None if t is None else t.to(device=device, dtype=dt).requires_grad_()  # noqa: E731
    h, theta, gate_w = cast(h64), cast(th64), cast(w64)
    gate_b, strength = cast(b64, torch.float32), cast(s64, torch.float32)
    with poisoned():
        out, gates = steerkit.gated_steer(h, theta, gate_w, gate_b, strength, norm_preserve=norm_preserve,
                                          return_gates=True)
        assert out.shape == (n, d) and out.dtype == dtype and gates.shape == (n, k)
        if n == 0:
            return
        assert rel_err(out, ref_out) <= TOL[dtype], "output"
        assert rel_err(gates, ref_gates) <= max(TOL[dtype], 1e-5), "gates"
        out.backward(g64.to(device=device, dtype=dtype))
    # Gradients of h and of a per-row strength are row-local; those of theta, gate_w, gate_b and a [K]
    # strength are sums over the N rows, whose float32 rounding grows like √N under cancellation
    # (the reference itself, run in float32, misses 2e-5 at N=4096): scale their tolerance by √(N/256).
    # A per-row strength's gradient is one dot product over D per element, and with N·K tiny (N=1, K=2)
    # a single cancelling sum dominates the norm: float32 tolerance grows by √(D/64) there.
    row_local = {"h", "strength"} if strength_kind == "rows" else {"h"}
    for name, leaf, ref in zip(("h", "theta", "gate_w", "gate_b", "strength"),
                               (h, theta, gate_w, gate_b, strength), ref_grads):
        if leaf is None:
            continue
        tol = TOL[dtype] if dtype != torch.float32 else 2e-5
        if name not in row_local:
            tol *= max(1.0, (n / 256) ** 0.5)
        elif name == "strength" and dtype == torch.float32:
            tol *= max(1.0, (d / 64) ** 0.5)
        # A gradient in half precision's subnormal range (a tiny h makes gate_w's about 1e-6 in float16)
        # is rounded in absolute steps of the subnormal spacing, whatever its relative tolerance:
        # allow a few of those steps per element on top.
        info = torch.finfo(dtype)
        tol += 4 * info.smallest_normal * info.eps * leaf.numel() ** 0.5 / max(ref.norm().item(), 1e-300)
        err = rel_err(leaf.grad, ref)
        if name in summands:  # relative to the larger of the sum and its terms
            err *= ref.norm().item() / max(ref.norm().item(), summands[name])
        assert err <= tol, f"grad of {name}: {err:.2e} > {tol:.1e} (input seed {seed})"


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton", "cuda"])
@pytest.mark.parametrize("k", [1, 16])
def test_norm_preserve_when_the_steer_nearly_annuls_the_rows(backend, k, use_backend):
    """Rows that the steer all but cancels (‖h + Σcθ‖ ≈ 1% of ‖h‖): the Triton forward gets the steered
    norm from ‖h‖² + 2Σc(h·θ) + cᵀGc, which loses its digits there, so it must take its exact sweep;
    every backend stays within float32 tolerance of the float64 reference. K=16 covers the tl.dot form."""
    device = skip_unless_runnable(backend, torch.float32)
    g = torch.Generator().manual_seed(12 + k)
    d, n = 96, 40
    base = torch.randn(d, dtype=torch.float64, generator=g)
    h64 = base + 1e-3 * torch.randn(n, d, dtype=torch.float64, generator=g)
    th64 = 0.05 * torch.randn(k, d, dtype=torch.float64, generator=g)
    th64[0] = -base
    s64 = torch.zeros(k, dtype=torch.float64)
    s64[0] = 0.99  # leaves about 1% of each row
    h64, th64 = h64.float().double(), th64.float().double()
    want, _ = reference.gated_steer(h64, th64, None, None, s64, True)
    use_backend(backend)
    got = steerkit.gated_steer(h64.float().to(device), th64.float().to(device), None, None, s64.float().to(device),
                               norm_preserve=True)
    assert rel_err(got, want) <= 2e-5
