"""How well learned gates tell an attribute's negatives (to edit) from its positives (to keep)."""
from __future__ import annotations

import torch

from ..ops import gated_steer
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
    """The gates [M, K] the vectors open on each row of x [M, D], as the op computes them when steering."""
    e = vectors[(site, layer)]
    with torch.no_grad():
        return gated_steer(x.float(), e.theta.float(), None if e.gate_w is None else e.gate_w.float(), e.gate_b,
                           return_gates=True)[1].float()


def gate_report(vectors: SteeringVectors, acts: Activations) -> dict[str, dict[str, float]]:
    """Per attribute: mean gate on its negatives and positives, and the AUC of the gate separating them."""
    out = {}
    for k, a in enumerate(acts.attributes):
        # chunk by chunk: shards on disk are read one at a time
        gn = torch.cat([gates(vectors, c, acts.site, acts.layer)[:, k] for c in acts.rows(a, "negative").chunks()])
        gp = torch.cat([gates(vectors, c, acts.site, acts.layer)[:, k] for c in acts.rows(a, "positive").chunks()])
        out[a] = dict(gate_neg=float(gn.mean()), gate_pos=float(gp.mean()), auc=auc(gn, gp))
    return out
