"""The MAT-Steer loss terms (arXiv 2502.12446), in the paper's form and the released code's.

For attributes t = 1..K with positive activations P_t and negatives N_t, edited negatives
f(a) = a + Σ_t' g_t'(a) θ_t' (norm-preserved when on) and gates g [.., K]:

  paper     mmd = Σ_t MMD(f(N_t), P_t)      pos = Σ_t mean_{a∈P_t} g_t(a)²
            sparse = Σ_t mean_{a∈N_t} |g_t(a)|      ortho = Σ_{t≠t'} cos²(θ_t, θ_t')  (ordered pairs)
  released  mmd = mean_t MMD(f(N_t), P_t)   pos = Σ_t mean_{a∈P_t} Σ_t' g_t'(a)²
            sparse = Σ_t mean_{a∈N_t} Σ_t' |g_t'(a)|  ortho = Σ_{t<t'} cos²(θ_t, θ_t')    (unordered pairs)

Means over the examples of a batch keep the weights independent of the batch size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import VARIANTS


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """k(x_i, y_j) = exp(−‖x_i − y_j‖² / 2σ²), [M, M']. Squared distances from the expansion
    ‖x‖² + ‖y‖² − 2x·y, clamped at 0, which (unlike cdist) has a gradient at x_i = y_j."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return torch.exp(-d2.clamp_min(0.0) / (2.0 * sigma * sigma))


def mmd(x: torch.Tensor, y: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """The biased (V-statistic) estimate of MMD² with a Gaussian kernel of width ``sigma``."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1] or not len(x) or not len(y):
        raise ValueError(f"mmd needs two non-empty [M, D] tensors of one width, got {list(x.shape)} and {list(y.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return (gaussian_kernel(x, x, sigma).mean() + gaussian_kernel(y, y, sigma).mean()
            - 2.0 * gaussian_kernel(x, y, sigma).mean())


def mmd_many(xs: list[torch.Tensor], ys: list[torch.Tensor], sigma: float) -> list[torch.Tensor]:
    """``[mmd(x, y, sigma) for x, y in zip(xs, ys)]``; when the x's share one shape and the y's another
    (a training batch: every attribute's block is the same size) as one batched Gram matrix of each
    pair's rows laid end to end, weighted by (1/M, …, −1/N, …) on both sides: the same V-statistic
    in a handful of ops instead of a dozen per attribute, which at a batch of 16 + 16 rows is what
    a training step's time goes to."""
    if len({tuple(x.shape) for x in xs}) != 1 or len({tuple(y.shape) for y in ys}) != 1 or len(xs) != len(ys) \
            or xs[0].dim() != 2 or ys[0].dim() != 2 or xs[0].shape[1] != ys[0].shape[1] or not len(xs[0]) or not len(ys[0]):
        return [mmd(x, y, sigma) for x, y in zip(xs, ys)]
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    m, n = len(xs[0]), len(ys[0])
    z = torch.cat([torch.stack(xs), torch.stack(ys)], dim=1)           # [K, M+N, D]
    sq = (z * z).sum(-1)
    d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * z @ z.transpose(1, 2)
    k = torch.exp(-d2.clamp_min(0.0) / (2.0 * sigma * sigma))
    v = torch.cat([z.new_full((m,), 1.0 / m), z.new_full((n,), -1.0 / n)])
    return list(((k @ v) @ v).unbind(0))


def orthogonality(theta: torch.Tensor, pairs: str = "ordered", eps: float = 1e-12) -> torch.Tensor:
    """Σ over pairs t ≠ t' of cos²(θ_t, θ_t'); ``ordered`` counts each pair twice (the paper's Σ_{t≠t'})."""
    if pairs not in ("ordered", "unordered"):
        raise ValueError(f"pairs must be 'ordered' or 'unordered', got {pairs!r}")
    unit = theta / theta.norm(dim=1, keepdim=True).clamp_min(eps)
    cos2 = (unit @ unit.T) ** 2
    off = cos2.sum() - cos2.diagonal().sum()
    return off if pairs == "ordered" else off / 2


def preservation(gates_pos: list[torch.Tensor], variant: str = "paper") -> torch.Tensor:
    """Gates on each attribute's positives [M_t, K] should stay shut: Σ_t mean g²."""
    return sum(_own_or_all(g, t, variant).pow(2).sum(1).mean() for t, g in enumerate(gates_pos))


def sparsity(gates_neg: list[torch.Tensor], variant: str = "paper") -> torch.Tensor:
    """An L1 pull on the gates on each attribute's negatives [M_t, K]: Σ_t mean |g|."""
    return sum(_own_or_all(g, t, variant).abs().sum(1).mean() for t, g in enumerate(gates_neg))


def _own_or_all(g: torch.Tensor, t: int, variant: str) -> torch.Tensor:
    _check_variant(variant)
    return g[:, t:t + 1] if variant == "paper" else g


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


@dataclass
class LossTerms:
    mmd: torch.Tensor
    pos: torch.Tensor
    sparse: torch.Tensor
    ortho: torch.Tensor
    total: torch.Tensor

    NAMES = ("total", "mmd", "pos", "sparse", "ortho")


def mat_loss(pos: list[torch.Tensor], edited_neg: list[torch.Tensor], gates_pos: list[torch.Tensor],
             gates_neg: list[torch.Tensor], theta: torch.Tensor, sigma: float = 2.0, lambda_pos: float = 0.9,
             lambda_sparse: float = 0.9, lambda_ortho: float = 0.1, variant: str = "paper",
             mmd_scale: list[float] | None = None) -> LossTerms:
    """The whole objective over K attributes (lists indexed by attribute). ``mmd_scale``: a factor
    per attribute on its MMD (the scaled recipe's normalisation; the paper has none)."""
    _check_variant(variant)
    per_attr = mmd_many(list(edited_neg), list(pos), sigma)
    if mmd_scale is not None:
        per_attr = [m * c for m, c in zip(per_attr, mmd_scale)]
    m = sum(per_attr) if variant == "paper" else sum(per_attr) / len(per_attr)
    lp, ls = preservation(gates_pos, variant), sparsity(gates_neg, variant)
    lo = orthogonality(theta, "ordered" if variant == "paper" else "unordered")
    total = m + lambda_pos * lp + lambda_sparse * ls + lambda_ortho * lo
    return LossTerms(m, lp, ls, lo, total)
