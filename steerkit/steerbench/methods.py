"""The steering methods the benchmark compares, each built from the same activations
(``mat.Activations``: every token of each attribute's positive and negative texts at one site).

* ``mean_diff``: CAA / ActAdd: the mean of the positives minus the mean of the negatives, added
  ungated at every token. The baseline every steering library ships.
* ``probe``: ITI-style: the direction of a logistic-regression probe (positives high), scaled as ITI
  scales it, by the standard deviation of the activations along it; ungated.
* ``mat``: MAT-Steer with steerkit's default recipe (``MATConfig()``).
* ``mat_paper``: MAT-Steer with the paper's recipe as written (``MATConfig.paper()``).
* ``prompt``: no vector; an instruction to have the attribute, prepended to the prompt (``PROMPTS``).

Each method's vectors hold every attribute (K of them), so one file steers one attribute or both.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..mat import MATConfig, train
from ..mat.rows import TensorRows
from ..mat.trainer import init_sample, linear_probe
from ..vectors import SteeringVectors

from .config import METHODS, VECTOR_METHODS  # noqa: F401  (METHODS: the names, with prompting)

# the instruction the prompting baseline prepends, per attribute
PROMPTS = {
    "sentiment": "Here is a cheerful, happy, upbeat story.\n\n",
    "food": "Here is a story about food, cooking and eating.\n\n",
    "space": "Here is a story about the night sky, planets and spaceflight.\n\n",
}


def _sample(x: torch.Tensor, seed: int) -> torch.Tensor:
    """At most ``INIT_ROWS`` rows, drawn as the MAT-Steer warm start draws them."""
    return init_sample(TensorRows(x), torch.Generator().manual_seed(seed))


def mean_difference(acts, attribute: str) -> torch.Tensor:
    """Mean of the attribute's positive rows minus the mean of its negative rows, [D]."""
    return acts.pos[attribute].double().mean(0).float() - acts.neg[attribute].double().mean(0).float()


def probe_direction(acts, attribute: str, seed: int = 0) -> torch.Tensor:
    """ITI's direction and scale: the unit normal of a logistic probe separating positives (high)
    from negatives, times the standard deviation of the activations along it, [D]."""
    neg, pos = _sample(acts.neg[attribute].float(), seed), _sample(acts.pos[attribute].float(), seed)
    w, _ = linear_probe(pos, neg)  # linear_probe scores its first argument high
    unit = w / w.norm().clamp_min(1e-12)
    return unit * float((torch.cat([pos, neg]) @ unit).std())


def build(method: str, acts, seed: int = 0, epochs: int | None = None, config: MATConfig | None = None) -> SteeringVectors:
    """The vectors ``method`` learns from ``acts``, every attribute at once. ``epochs``: MAT-Steer's
    training length, where not its config's default; ``config``: the MAT-Steer config for ``mat``
    (default ``MATConfig()``; ``mat_paper`` is always ``MATConfig.paper()``)."""
    attrs = list(acts.attributes)
    provenance = dict(acts.provenance, method=method, site=acts.site, layer=acts.layer, seed=seed)
    if method in ("mean_diff", "probe"):
        rows = [mean_difference(acts, a) if method == "mean_diff" else probe_direction(acts, a, seed) for a in attrs]
        return SteeringVectors.from_tensors(torch.stack(rows), acts.site, acts.layer, attributes=attrs,
                                            provenance=provenance)
    if method not in ("mat", "mat_paper"):
        raise ValueError(f"method: expected one of {', '.join(VECTOR_METHODS)}, got {method!r}")
    cfg = MATConfig.paper() if method == "mat_paper" else (config or MATConfig())
    cfg = replace(cfg, seed=seed, **({"epochs": epochs} if epochs else {}))
    return train(acts, cfg, progress=False)
