"""Where to steer, chosen from data: each vector method's (site, layer) picked on a development split.

The development split is a draw of training texts by its own seed (``DEV_SEED``) and neutral prompts
that the test never uses (those after the test's in the prompt list). At each candidate place every
vector method is trained on the development draw and swept over the benchmark's strengths on the
development prompts, in one batched generate per method; its score there is the frontier at the
calibration budget, per attribute, divided by the best any method reached for that attribute at any
place (so no attribute's judge scale outweighs another's), averaged over attributes. Each method takes
the place where its own score is highest, so every method is compared at its best place.
"""
from __future__ import annotations

import statistics

from ..mat.collect import text_activations
from .config import AUTO_PLACES, BenchSettings, parse_place
from .data import draw
from .measures import frontier
from .methods import VECTOR_METHODS, build
from .runner import Job, Runner, activations

DEV_SEED = 1000          # the development draw; the test's data seeds are small integers
DEPTHS = (0.25, 0.4, 0.55, 0.7)   # block_out candidates, as shares of the depth


def candidates(spec: tuple[str, ...], num_layers: int) -> list[str]:
    """The places to try: ``("auto",)`` is block_out at a quarter, 40%, 55% and 70% of the depth and
    attn_out and mlp_out at 40%; otherwise the places given."""
    if tuple(spec) == (AUTO_PLACES,):
        layers = sorted({min(num_layers - 1, int(f * num_layers)) for f in DEPTHS})
        mid = int(0.4 * num_layers)
        return [f"block_out@{n}" for n in layers] + [f"attn_out@{mid}", f"mlp_out@{mid}"]
    out = []
    for text in spec:
        site, layer = parse_place(text, num_layers)
        out.append(f"{site}@{layer}")
    return list(dict.fromkeys(out))


def dev_prompts(all_prompts: list[str], s: BenchSettings) -> list[str]:
    """The development prompts: the ones after the test's, never generated from in the test."""
    dev = list(all_prompts)[s.prompts:s.prompts + s.dev_prompts]
    if len(dev) < s.dev_prompts:
        raise ValueError(f"places: choosing a place needs {s.dev_prompts} development prompts after the "
                         f"{s.prompts} test prompts; the prompt list has {len(all_prompts)}")
    return dev


def choose(r: Runner, pool: list[dict], prompts: list[str], places: list[str], log=print) -> dict:
    """{"chosen": {method: place}, "score": {method: {place: score}}, "frontier": {method: {place:
    {attribute: frontier}}}} from the development split (see the module's docstring)."""
    s = r.s
    d = draw(pool, DEV_SEED, s.dev_per_class, 1)
    texts = sorted({x["text"] for x in d.train})
    attrs = r.attributes
    base = r.measure([Job(prompts)])[0][0]
    methods = [m for m in s.methods if m in VECTOR_METHODS]
    found: dict = {m: {} for m in methods}
    for place in places:
        site, layer = parse_place(place)
        acts = activations(r.model, r.tok, text_activations(r.model, r.tok, texts, site, layer), d, site, layer)
        for m in methods:
            v = build(m, acts, DEV_SEED, s.mat_epochs, r.mat_config)
            jobs = [Job(prompts, [float(value) if j == k else 0.0 for j in range(len(attrs))])
                    for k in range(len(attrs)) for value in s.strengths]
            got = iter(r.measure(jobs, v))
            row = {}
            for a in attrs:
                curve = [(0.0, 0.0)]
                for _ in s.strengths:
                    scores = next(got)[0]
                    curve.append((scores["nll"] - base["nll"], scores["judge"][a] - base["judge"][a]))
                row[a] = frontier(curve, s.calibration_budget)
            found[m][place] = row
        log(f"place {place}: " + "; ".join(f"{m} " + ", ".join(f"{a} {found[m][place][a]:+.3f}" for a in attrs)
                                           for m in methods))
    best = {a: max([found[m][p][a] for m in methods for p in places] + [1e-9]) for a in attrs}
    score = {m: {p: statistics.fmean(max(found[m][p][a], 0.0) / best[a] for a in attrs) for p in places}
             for m in methods}
    chosen = {m: max(places, key=lambda p: (score[m][p], -places.index(p))) for m in methods}
    return dict(chosen=chosen, score=score, frontier=found, dev_prompts=len(prompts), dev_seed=DEV_SEED)
