"""The MAT-Steer trainer: learns θ [K,D], gate_w [K,D], gate_b [K] from collected activations.

Two recipes share one loop:

* ``paper``: θ ~ N(0, I), ``nn.Linear``-style gate init, σ = 2 — the paper's recipe as written.
* ``scaled`` (default): the paper's loss and weights, with the scale taken from the data. On real
  activations (norms of tens) a fixed σ = 2 makes every kernel value between distinct activations
  ≈ 0, so MMD gives no gradient, and the gate terms close every gate before θ aligns. So σ comes from
  the median pairwise distance, θ starts at the difference of positive and negative means, and each
  gate starts from a logistic-regression probe that opens on negatives and stays shut on positives.
  Only θ's direction is learned (its length stays the warm start's), and there is no sparsity term:
  otherwise the loss shrinks the gates and lengthens θ to match, and the gates end shut on the
  neutral text a user steers (measured on SmolLM2-135M, issue 27).
"""
from __future__ import annotations

import math
from dataclasses import asdict

import torch

from .. import __version__
from ..devices import resolve_device
from ..ops import gated_steer
from ..vectors import SteeringVectors
from .rows import TensorRows, concat_gather
from .config import MATConfig
from .losses import LossTerms, mat_loss, mmd

def median_distance(x: torch.Tensor, sample: int = 1024, generator: torch.Generator | None = None) -> float:
    """The median pairwise Euclidean distance over (a sample of) the rows of ``x``."""
    if len(x) > sample:
        x = x[torch.randperm(len(x), generator=generator)[:sample]]
    d = torch.cdist(x.double(), x.double())
    iu = torch.triu_indices(len(x), len(x), 1)
    med = float(d[iu[0], iu[1]].median()) if len(x) > 1 else 1.0
    return med if med > 0 else 1.0


def linear_probe(neg: torch.Tensor, pos: torch.Tensor, steps: int = 200, l2: float = 1e-3) -> tuple[torch.Tensor, float]:
    """(w, b) of an L2-regularised logistic regression scoring negatives 1 and positives 0, on the raw
    activations (so w·a + b is the gate logit), fitted with L-BFGS in float64 on standardised inputs."""
    x = torch.cat([neg, pos]).double()
    y = torch.cat([torch.ones(len(neg)), torch.zeros(len(pos))]).double()
    weight = torch.cat([torch.full((len(neg),), 0.5 / len(neg)), torch.full((len(pos),), 0.5 / len(pos))]).double()
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mu) / sd
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = xs @ w + b
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum()
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        w_raw = w / sd
        b_raw = b - (w_raw * mu).sum()
    return w_raw.float(), float(b_raw)


INIT_ROWS = 16384  # rows per side the warm start's probe and mean difference see (all of them, up to this;
# the toy demo has 6000): at D = 4096 the float64 probe holds about 1 GB


def init_sample(rows, gen: torch.Generator) -> torch.Tensor:
    """All the rows, or ``INIT_ROWS`` of them drawn by ``gen`` when there are more."""
    return rows.all() if len(rows) <= INIT_ROWS else rows.gather(torch.randperm(len(rows), generator=gen)[:INIT_ROWS])


def _median_distance_rows(sources: list, gen: torch.Generator, sample: int = 1024) -> float:
    """``median_distance`` of the sources laid end to end, drawing the same rows as on their concatenation."""
    n = sum(len(r) for r in sources)
    idx = torch.randperm(n, generator=gen)[:sample] if n > sample else torch.arange(n)
    return median_distance(concat_gather(sources, idx), sample)


def _rms(sources: list) -> float:
    """The activations' per-coordinate RMS; streamed shard by shard when they are on disk."""
    if all(isinstance(r, TensorRows) for r in sources):
        return float(torch.cat([r.x for r in sources]).pow(2).mean().sqrt().clamp_min(1e-6))
    total, count = 0.0, 0
    for r in sources:
        for c in r.chunks():
            total += float(c.double().pow(2).sum())
            count += c.numel()
    return max(math.sqrt(total / max(count, 1)), 1e-6)


def _init(acts, cfg: MATConfig, gen: torch.Generator):
    k, d = len(acts.attributes), acts.hidden_size
    if cfg.recipe == "paper":
        theta = torch.randn(k, d, generator=gen)
        bound = 1.0 / math.sqrt(d)  # nn.Linear's default init
        gate_w = (torch.rand(k, d, generator=gen) * 2 - 1) * bound
        gate_b = (torch.rand(k, generator=gen) * 2 - 1) * bound
        return theta, gate_w, gate_b
    thetas, ws, bs = [], [], []
    for a in acts.attributes:
        neg, pos = init_sample(acts.rows(a, "negative"), gen), init_sample(acts.rows(a, "positive"), gen)
        w, b = linear_probe(neg, pos)
        thetas.append(_confident_mean_difference(pos, neg, w, b))
        ws.append(w)
        bs.append(b)
    return _decorrelate(torch.stack(thetas)), torch.stack(ws), torch.tensor(bs)


def _decorrelate(theta: torch.Tensor) -> torch.Tensor:
    """The nearest mutually orthogonal directions (Löwdin: (ΘΘᵀ)^(-1/2) Θ), each kept at its length.
    Mean differences of different attributes can share a large component (on the toy the two are at
    cosine -0.85), and starting from them, steering one attribute drags the other along before the
    orthogonality term can pull them apart."""
    if len(theta) < 2:
        return theta
    t = theta.double()
    unit = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    evals, evecs = torch.linalg.eigh(unit @ unit.T)
    if float(evals.min()) < 1e-6:  # (nearly) dependent directions: nothing sensible to separate
        return theta
    orth = evecs @ torch.diag(evals.rsqrt()) @ evecs.T @ unit
    return (orth * t.norm(dim=1, keepdim=True)).to(theta.dtype)


def _confident_mean_difference(pos: torch.Tensor, neg: torch.Tensor, w: torch.Tensor, b: float,
                               confidence: float = 0.8, min_rows: int = 16) -> torch.Tensor:
    """Mean of the positives minus mean of the negatives, over the rows the probe places confidently.
    Collected over all tokens, most rows of a text (those before the attribute shows) look alike on
    both sides; the plain mean difference is diluted by them and too short to flip anything. Falls
    back to all rows on a side with fewer than ``min_rows`` confident ones."""
    p_neg, p_pos = torch.sigmoid(neg @ w + b), torch.sigmoid(pos @ w + b)
    sure_neg, sure_pos = neg[p_neg > confidence], pos[p_pos < 1 - confidence]
    sure_neg = sure_neg if len(sure_neg) >= min_rows else neg
    sure_pos = sure_pos if len(sure_pos) >= min_rows else pos
    return sure_pos.mean(0) - sure_neg.mean(0)


def _mmd_sample(neg, pos, sigma: float, gen: torch.Generator, m: int = 512) -> float:
    pick = lambda x: x.gather(torch.randperm(len(x), generator=gen)[:m])  # noqa: E731
    return float(mmd(pick(neg), pick(pos), sigma))


def _epoch_batches(n: int, size: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    """[steps, size] indices: successive slices of fresh permutations, so every row is used once per
    pass even when size does not divide n (and rows repeat only when n < size)."""
    need = steps * size
    perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
    return torch.cat(perms)[:need].view(steps, size)


def batch_terms(bn: list, bp: list, theta, gate_w, gate_b, step_strength: torch.Tensor, sigma: float,
                cfg: MATConfig, mmd_scale=None) -> LossTerms:
    """The loss of one batch: each attribute's negatives ``bn`` and positives ``bp`` (lists of
    [batch, D]) through one op call, the negatives edited by the rows of ``step_strength`` (which
    vectors edit each attribute's negatives, then zeros for the positives, whose gates are all that is
    used: a gate does not depend on the strength). Finiteness is checked once an epoch, on the loss,
    not by the op at every step (a host sync)."""
    n_neg = sum(len(x) for x in bn)
    out, gates = gated_steer(torch.cat(bn + bp), theta, gate_w, gate_b, step_strength,
                             norm_preserve=cfg.norm_preserve, return_gates=True, check_finite=False)
    edited, g_neg, g_pos = out[:n_neg], gates[:n_neg], gates[n_neg:]
    return mat_loss(bp, list(edited.split(cfg.batch_neg)), list(g_pos.split(cfg.batch_pos)),
                    list(g_neg.split(cfg.batch_neg)), theta, sigma, cfg.lambda_pos, cfg.resolved_lambda_sparse(),
                    cfg.lambda_ortho, cfg.variant, mmd_scale)


def train(acts, config: MATConfig | None = None, progress: bool = True,
          history: list | None = None) -> SteeringVectors:
    """Learns gated steering vectors for every attribute of ``acts`` (an ``Activations`` in memory, or
    ``ActivationShards`` read from disk one minibatch at a time: the same rows give the same batches); the same config and data give
    the same vectors on every run (on one device). ``history``, when given, receives one dict per
    epoch with the mean of each loss term. The provenance records the config, σ, the data hash, the
    model and the final loss."""
    from ..progress import bar as progress_bar

    cfg = config or MATConfig()
    cfg.check()
    device = torch.device(resolve_device(cfg.device, "device"))
    gen = torch.Generator().manual_seed(cfg.seed)
    attrs = acts.attributes
    pos = [acts.rows(a, "positive") for a in attrs]
    neg = [acts.rows(a, "negative") for a in attrs]
    sigma = cfg.sigma if cfg.sigma is not None else (
        2.0 if cfg.recipe == "paper" else _median_distance_rows(pos + neg, gen))
    theta0, w0, b0 = _init(acts, cfg, gen)
    theta, gate_w, gate_b = (t.to(device).float().requires_grad_() for t in (theta0, w0, b0))
    theta_norm = theta.detach().norm(dim=1, keepdim=True).clamp_min(1e-12) if cfg.resolved_fix_theta_norm() else None
    pos = [p.to(device) for p in pos]
    neg = [n.to(device) for n in neg]
    mmd_scale, groups = None, [{"params": [theta, gate_w, gate_b]}]
    if cfg.recipe == "scaled":
        # Adam moves every coordinate by about lr per step whatever its scale: give θ steps in units
        # of the activations' per-coordinate RMS s, and w steps that move a gate logit by about lr.
        s = _rms(pos + neg)
        groups = [{"params": [theta], "lr": cfg.lr * s}, {"params": [gate_w], "lr": cfg.lr / s},
                  {"params": [gate_b], "lr": cfg.lr}]
        # each attribute's MMD in units of its unedited value, so the gate terms' weights mean the
        # same thing whatever σ and the data's scale
        mmd_scale = [1.0 / max(_mmd_sample(n, p, sigma, gen), 1e-6) for p, n in zip(pos, neg)]
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    steps = cfg.steps_per_epoch or max(-(-max(len(p), len(n)) // b) for p, n in zip(pos, neg)
                                       for b in (cfg.batch_pos, cfg.batch_neg))
    # which vectors edit attribute t's negatives in its MMD term: all of them (the paper's f), or t's
    # alone, as one [rows, K] strength: one-hot rows per attribute's block of the batch
    k = len(attrs)
    edit_strength = (torch.ones(k * cfg.batch_neg, k, device=device) if cfg.resolved_mmd_edit() == "all" else
                     torch.eye(k, device=device).repeat_interleave(cfg.batch_neg, dim=0))
    # one op call a step edits the negatives and gives every row's gates: the positives ride along at
    # strength 0 (their gates do not depend on it, and their edited rows are not used)
    step_strength = torch.cat([edit_strength, torch.zeros(k * cfg.batch_pos, k, device=device)])
    history = history if history is not None else []
    bar = progress_bar(range(cfg.resolved_epochs()), desc="MAT-Steer", enabled=progress, unit="epoch")
    for _ in bar:
        idx_p = [_epoch_batches(len(p), cfg.batch_pos, steps, gen) for p in pos]
        idx_n = [_epoch_batches(len(n), cfg.batch_neg, steps, gen) for n in neg]
        sums: dict[str, torch.Tensor] = {}
        for s in range(steps):
            bp = [p.gather(i[s]) for p, i in zip(pos, idx_p)]
            bn = [n.gather(i[s]) for n, i in zip(neg, idx_n)]
            terms = batch_terms(bn, bp, theta, gate_w, gate_b, step_strength, sigma, cfg, mmd_scale)
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            opt.step()
            if theta_norm is not None:
                with torch.no_grad():
                    theta.mul_(theta_norm / theta.norm(dim=1, keepdim=True).clamp_min(1e-12))
            for k in LossTerms.NAMES:  # summed on the device: no per-step sync
                sums[k] = sums.get(k, 0.0) + getattr(terms, k).detach() / steps
        history.append({k: float(v) for k, v in sums.items()})
        if not math.isfinite(history[-1]["total"]):
            raise FloatingPointError(f"MAT-Steer training diverged in epoch {len(history)}: the loss is "
                                     f"{history[-1]['total']} (try a lower lr than {cfg.lr:g})")
        bar.set_postfix({k: f"{v:.3g}" for k, v in history[-1].items()})

    provenance = dict(acts.provenance)
    provenance.update(method="mat-steer", site=acts.site, layer=acts.layer, tokens=acts.tokens,
                      config=asdict(cfg), sigma=sigma, mmd_edit=cfg.resolved_mmd_edit(), epochs=cfg.resolved_epochs(),
                      final_loss=history[-1], steerkit=__version__)
    return SteeringVectors.from_tensors(theta.detach().cpu(), acts.site, acts.layer, gate_w=gate_w.detach().cpu(),
                                        gate_b=gate_b.detach().cpu(), attributes=list(attrs),
                                        norm_preserve=cfg.resolved_steer_norm_preserve(), provenance=provenance)
