"""The MAT-Steer loss terms against values worked out by hand, and their gradients by gradcheck."""
import math

import pytest
import torch

from steerkit.mat import losses


def test_gaussian_kernel_by_hand():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    k = losses.gaussian_kernel(x, y, sigma=2.0)
    assert torch.allclose(k, torch.tensor([[1.0], [math.exp(-25 / 8)]], dtype=torch.float64))


def test_mmd_biased_estimator_by_hand():
    # x = {0, 1}, y = {3} in one dimension, sigma = 1: k(a, b) = exp(-(a-b)^2 / 2)
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[3.0]], dtype=torch.float64)
    e = math.exp
    kxx = (1 + 1 + 2 * e(-0.5)) / 4
    kyy = 1.0
    kxy = (e(-4.5) + e(-2.0)) / 2
    assert losses.mmd(x, y, sigma=1.0).item() == pytest.approx(kxx + kyy - 2 * kxy, rel=1e-12)
    assert losses.mmd(x, x, sigma=1.0).item() == pytest.approx(0.0, abs=1e-12)


def test_orthogonality_by_hand():
    theta = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    # cos^2: (0,1) = 1/2, (0,2) = 0, (1,2) = 1/2
    assert losses.orthogonality(theta, "unordered").item() == pytest.approx(1.0)
    assert losses.orthogonality(theta, "ordered").item() == pytest.approx(2.0)


def test_gate_terms_paper_vs_released_by_hand():
    # two attributes; rows are examples, columns the K = 2 gates
    g_pos = [torch.tensor([[0.5, 0.1], [0.3, 0.2]]), torch.tensor([[0.4, 0.6]])]
    g_neg = [torch.tensor([[0.9, 0.2]]), torch.tensor([[0.1, 0.7], [0.3, 0.5]])]
    # paper: attribute t's own gate only
    assert losses.preservation(g_pos, "paper").item() == pytest.approx((0.25 + 0.09) / 2 + 0.36)
    assert losses.sparsity(g_neg, "paper").item() == pytest.approx(0.9 + (0.7 + 0.5) / 2)
    # released: every gate
    assert losses.preservation(g_pos, "released").item() == pytest.approx(
        (0.25 + 0.01 + 0.09 + 0.04) / 2 + (0.16 + 0.36))
    assert losses.sparsity(g_neg, "released").item() == pytest.approx(1.1 + (0.8 + 0.8) / 2)


def test_mat_loss_combines_terms_with_weights():
    torch.manual_seed(0)
    pos = [torch.randn(4, 3, dtype=torch.float64) for _ in range(2)]
    neg = [torch.randn(5, 3, dtype=torch.float64) for _ in range(2)]
    gp = [torch.rand(4, 2, dtype=torch.float64) for _ in range(2)]
    gn = [torch.rand(5, 2, dtype=torch.float64) for _ in range(2)]
    theta = torch.randn(2, 3, dtype=torch.float64)
    for variant, agg, pairs in (("paper", sum, "ordered"), ("released", lambda v: sum(v) / len(v), "unordered")):
        t = losses.mat_loss(pos, neg, gp, gn, theta, sigma=1.5, lambda_pos=0.3, lambda_sparse=0.7, lambda_ortho=0.2,
                            variant=variant)
        want_mmd = agg([losses.mmd(n, p, 1.5) for n, p in zip(neg, pos)])
        want = (want_mmd + 0.3 * losses.preservation(gp, variant) + 0.7 * losses.sparsity(gn, variant)
                + 0.2 * losses.orthogonality(theta, pairs))
        assert t.mmd.item() == pytest.approx(want_mmd.item())
        assert t.total.item() == pytest.approx(want.item())


def test_gradcheck_every_term():
    torch.manual_seed(1)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: losses.mmd(a, b, sigma=1.3), (x, y))
    theta = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: losses.orthogonality(t, "ordered"), (theta,))
    g = torch.rand(4, 2, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_()
    h = torch.rand(3, 2, dtype=torch.float64).clamp(0.05, 0.95).requires_grad_()
    for variant in ("paper", "released"):
        assert torch.autograd.gradcheck(lambda a, b: losses.preservation([a, b], variant), (g, h))
        assert torch.autograd.gradcheck(lambda a, b: losses.sparsity([a, b], variant), (g, h))


def test_bad_arguments():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="sigma"):
        losses.mmd(x, x, sigma=0)
    with pytest.raises(ValueError, match="one width"):
        losses.mmd(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match="variant"):
        losses.sparsity([torch.rand(2, 1)], "other")
    with pytest.raises(ValueError, match="pairs"):
        losses.orthogonality(x, "some")


def test_mmd_many_equals_each_pair_and_its_gradient():
    torch.manual_seed(2)
    xs = [torch.randn(5, 4, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    ys = [torch.randn(6, 4, dtype=torch.float64) for _ in range(3)]
    got = losses.mmd_many(xs, ys, 1.7)  # one batched Gram matrix
    want = [losses.mmd(x, y, 1.7) for x, y in zip(xs, ys)]
    for g, w in zip(got, want):
        assert g.item() == pytest.approx(w.item(), rel=1e-10, abs=1e-12)
    grad_got = torch.autograd.grad(sum(got), xs)
    grad_want = torch.autograd.grad(sum(want), xs)
    for g, w in zip(grad_got, grad_want):
        assert torch.allclose(g, w, rtol=1e-9, atol=1e-12)
    # blocks of different sizes take the pairwise path, with the same values
    uneven = losses.mmd_many([xs[0], xs[1][:3]], ys[:2], 1.7)
    assert uneven[1].item() == pytest.approx(losses.mmd(xs[1][:3], ys[1], 1.7).item())
    with pytest.raises(ValueError, match="sigma"):
        losses.mmd_many(xs, ys, 0.0)
