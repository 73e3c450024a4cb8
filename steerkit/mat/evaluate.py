"""How well learned gates tell an attribute's negatives (to edit) from its positives (to keep)."""
from __future__ import annotations

import torch

from ..vectors import SteeringVectors
from .collect import Activations


def auc(high: torch.Tensor, low: torch.Tensor) -> float:
    """P(score of a ``high`` row > score of a ``low`` row), ties counting half (Mann–Whitney U)."""
    high, low = high.double().flatten(), low.double().flatten()
    if not len(high) or not len(low):
        raise ValueError("auc needs at least one score on each side")
    low = low.sort().values
    below = torch.searchsorted(low, high, right=False)
    not_above = torch.searchsorted(low, high, right=True)
    u = below.double().sum() + 0.5 * (not_above - below).double().sum()
    return float(u / (len(high) * len(low)))


def gates(vectors: SteeringVectors, x: torch.Tensor, site: str, layer: int) -> torch.Tensor:
    """σ(x·w_k + b_k) for every row of x [M, D]: [M, K] in float32."""
    e = vectors[(site, layer)]
    if e.gate_w is None:
        return torch.ones(len(x), vectors.num_attributes)
    z = x.float() @ e.gate_w.float().T
    return torch.sigmoid(z + e.gate_b.float() if e.gate_b is not None else z)


def gate_report(vectors: SteeringVectors, acts: Activations) -> dict[str, dict[str, float]]:
    """Per attribute: mean gate on its negatives and positives, and the AUC of the gate separating them."""
    out = {}
    for k, a in enumerate(acts.attributes):
        gn = gates(vectors, acts.neg[a], acts.site, acts.layer)[:, k]
        gp = gates(vectors, acts.pos[a], acts.site, acts.layer)[:, k]
        out[a] = dict(gate_neg=float(gn.mean()), gate_pos=float(gp.mean()), auc=auc(gn, gp))
    return out
