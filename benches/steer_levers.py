"""What each lever of the MAT-Steer recipe does, measured on the development split (issue 37, item 2).

The test prompts and data seeds of ``steerkit bench-steer`` are never touched: training texts come from
development draws (seeds 1000, 1001, ...; the test's are 0-2) and the prompts are the built-in neutral
prompts after the test's 24. For each lever and draw: the vectors at one place, a strength sweep of
each attribute alone (one batched generate; the time to build the vectors is the lever's
``train s``), the frontier at +0.25/+0.5/+1 nats, the strength that
reaches +0.5 nats, then every attribute at those strengths at once (retention: the share of its
alone shift each keeps), and the mean gate of each attribute over the steered continuations' tokens.

    python benches/steer_levers.py --model smollm2 -o benches/results/cpu/steer_levers_smollm2
    python benches/steer_levers.py --model gemma3-270m --seeds 1000 --levers mean_diff mat mat_20_epochs
    python benches/steer_levers.py --table OUT1/levers.jsonl OUT2/levers.jsonl   # one table of several runs

Levers (``LEVERS``) are built from one activation set per draw, so they differ only in the recipe, but
for the data variants (``DATA_VARIANTS``: how the negatives are formed), which draw the same seed from
another pool, and the token policy (``STEER_TOKENS``), which steers the same vectors on fewer tokens. The
model's own text that some variants add is sampled from the test's prompts, the only built-in neutral
prompts the development measure does not use; nothing is measured on them.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

BUDGETS = (0.25, 0.5, 1.0)


# -- the levers: each builds vectors from one draw's activations (``Draw`` below) ------------------
class Draw:
    """One development draw's activations at the lever's main place, and at other layers on demand
    (computed once each)."""

    def __init__(self, model, tok, d, seed, site, layer, num_layers, data_variants=None):
        self.model, self.tok, self.d, self.seed, self.site, self.layer = model, tok, d, seed, site, layer
        self.num_layers = num_layers
        self._acts: dict = {}
        self._variants = data_variants or {}  # name -> (seed -> a data draw of that variant)
        self._other: dict = {}

    def other(self, name: str) -> "Draw":
        """The same draw seed with the training data of variant ``name`` (``DATA_VARIANTS``)."""
        if name not in self._other:
            self._other[name] = Draw(self.model, self.tok, self._variants[name](self.seed), self.seed,
                                     self.site, self.layer, self.num_layers)
        return self._other[name]

    def acts(self, layer: int | None = None):
        from steerkit.mat.collect import text_activations
        from steerkit.steerbench.runner import activations

        layer = self.layer if layer is None else layer
        if layer not in self._acts:
            texts = sorted({x["text"] for x in self.d.train})
            rows = text_activations(self.model, self.tok, texts, self.site, layer)
            self._acts[layer] = activations(self.model, self.tok, rows, self.d, self.site, layer)
        return self._acts[layer]

    def spread_layers(self) -> list[int]:
        """Three layers around the main one: a quarter, 40% and 55% of the depth (the 40% one is the
        default place)."""
        from steerkit.steerbench.place import DEPTHS

        shares = [f for f in DEPTHS if f <= 0.55]  # place's candidates up to 55% of the depth
        return sorted({min(self.num_layers - 1, int(f * self.num_layers)) for f in shares} | {self.layer})


def _mat(acts, seed, **overrides):
    """MAT-Steer from the recipe these levers were measured against: the scaled recipe as it stood
    before them (100 epochs, norm preservation at inference); each lever names what it changes. The
    default chosen from them (20 epochs, no norm preservation at inference) is ``mat_no_norm_preserve``."""
    from steerkit.mat import MATConfig, train

    base = replace(MATConfig(), epochs=100, steer_norm_preserve=True)
    return train(acts, replace(base, seed=seed, **overrides), progress=False)


def _only(v):
    """The single (site, layer) entry of ``v``."""
    return v[next(iter(v))]


def _as(v, gate=True, norm_preserve=None, theta=None, gate_b=None):
    """``v`` with its gates dropped, its norm preservation set, its θ or its gate bias replaced."""
    from steerkit.vectors import Entry, SteeringVectors

    e = _only(v)
    entry = Entry(e.theta.clone() if theta is None else theta.clone(), e.gate_w if gate else None,
                  (e.gate_b if gate_b is None else gate_b) if gate else None)
    return SteeringVectors({next(iter(v)): entry}, v.attributes, v.gate_mode if gate else "none",
                           v.norm_preserve if norm_preserve is None else norm_preserve, v.provenance)


def _open_bias(acts, v, q: float = 0.8):
    """Each gate's bias moved so that the median gate over its attribute's negative tokens is ``q``."""
    e = _only(v)
    b = e.gate_b.clone()
    for k, a in enumerate(v.attributes):
        logit = acts.neg[a].float() @ e.gate_w[k].float() + float(e.gate_b[k])
        b[k] += math.log(q / (1 - q)) - float(logit.median())
    return _as(v, gate_b=b)


def _mean_diff(acts, seed):
    from steerkit.steerbench.methods import build

    return build("mean_diff", acts, seed)


def _default(acts, seed):
    """MAT-Steer as ``bench-steer`` trains it: steerkit's default recipe (``MATConfig()``)."""
    from steerkit.steerbench.methods import build

    return build("mat", acts, seed)


def _spread(draw: Draw, build):
    """``build(acts, seed)`` at each of ``draw.spread_layers()``, every θ divided by the number of layers,
    so strength 1 adds about as much in all as one layer's vectors at strength 1."""
    from steerkit.vectors import Entry, SteeringVectors

    layers = draw.spread_layers()
    parts = [build(draw.acts(n), draw.seed) for n in layers]
    entries = {}
    for v in parts:
        e = _only(v)
        entries[next(iter(v))] = Entry(e.theta / len(layers), e.gate_w, e.gate_b)
    return SteeringVectors(entries, parts[0].attributes, parts[0].gate_mode, parts[0].norm_preserve,
                           dict(parts[0].provenance, layers=layers))


LEVERS = {
    "mean_diff": ("mean difference (the baseline)", lambda d: _mean_diff(d.acts(), d.seed)),
    "mat": ("MAT-Steer, the earlier default (100 epochs, norm preserved)", lambda d: _mat(d.acts(), d.seed)),
    "mat_20_epochs": ("default, 20 epochs", lambda d: _mat(d.acts(), d.seed, epochs=20)),
    "mat_no_ortho": ("default, no orthogonality term (20 epochs)",
                     lambda d: _mat(d.acts(), d.seed, epochs=20, lambda_ortho=0.0)),
    "mat_open_bias": ("default, gate bias set so the median gate on negatives is 0.8 (20 epochs)",
                      lambda d: _open_bias(d.acts(), _mat(d.acts(), d.seed, epochs=20))),
    "mat_no_gates": ("MAT-Steer's θ, no gates (20 epochs)",
                     lambda d: _as(_mat(d.acts(), d.seed, epochs=20), gate=False)),
    "mat_gates_md_theta": ("MAT-Steer's gates on the mean difference's θ, no norm preservation (20 epochs)",
                           lambda d: _as(_mat(d.acts(), d.seed, epochs=20), norm_preserve=False,
                                         theta=_only(_mean_diff(d.acts(), d.seed)).theta)),
    "mat_no_norm_preserve": ("default, no norm preservation at inference (20 epochs; steerkit's default now)",
                             lambda d: _as(_mat(d.acts(), d.seed, epochs=20), norm_preserve=False)),
    "mat_100_epochs_no_norm_preserve": ("default (100 epochs), no norm preservation at inference",
                                        lambda d: _as(_mat(d.acts(), d.seed), norm_preserve=False)),
    "mean_diff_3_layers": ("mean difference at 3 layers (25/40/55% of the depth), each θ / 3",
                           lambda d: _spread(d, _mean_diff)),
    "mat_3_layers": ("default at 3 layers (25/40/55% of the depth), each θ / 3 (20 epochs)",
                     lambda d: _spread(d, lambda acts, seed: _mat(acts, seed, epochs=20))),
    # how the negatives are formed (issue 37, item 2): contrastive pairs only, as a user writes them (sentiment's
    # negatives the negative sentences, no neutral ones), and the model's own unsteered text added to every
    # attribute's negatives (``own_texts``: its sampled continuations of prompts apart from these)
    "mean_diff_pairs": ("mean difference, pairs only (sentiment's negatives: negative sentences)",
                        lambda d: _mean_diff(d.other("pairs").acts(), d.seed)),
    "mat_pairs": ("default, pairs only", lambda d: _default(d.other("pairs").acts(), d.seed)),
    "mean_diff_pairs_own": ("mean difference, pairs + the model's own text as negatives",
                            lambda d: _mean_diff(d.other("pairs_own").acts(), d.seed)),
    "mat_pairs_own": ("default, pairs + the model's own text as negatives",
                      lambda d: _default(d.other("pairs_own").acts(), d.seed)),
    "mean_diff_own": ("mean difference, the built-in data + the model's own text as negatives",
                      lambda d: _mean_diff(d.other("own").acts(), d.seed)),
    "mat_own": ("default, the built-in data + the model's own text as negatives",
                lambda d: _default(d.other("own").acts(), d.seed)),
    # which rows the MMD edits (issue 37, item 2): each attribute's negatives edited by every vector, the paper's f,
    # which trains each θ with the others applied, as when several are steered at once
    "mat_edit_all": ("default, every vector edits each attribute's negatives in its MMD (the paper's f)",
                     lambda d: _as(_mat(d.acts(), d.seed, epochs=20, mmd_edit="all"), norm_preserve=False)),
    # the token policy (issue 37, item 2): steer only the tokens the model generates, not the prompt's (``STEER_TOKENS``)
    "mean_diff_generated": ("mean difference, steering generated tokens only",
                            lambda d: _mean_diff(d.acts(), d.seed)),
    "mat_generated": ("default, steering generated tokens only", lambda d: _default(d.acts(), d.seed)),
}
# the baseline each lever's "cells ≥ mean diff" counts against: the mean difference on the same data and tokens
BASELINE = {"mat_pairs": "mean_diff_pairs", "mat_pairs_own": "mean_diff_pairs_own", "mat_own": "mean_diff_own",
            "mat_generated": "mean_diff_generated"}
# which tokens a lever's vectors steer where not every token (``steerkit.steer``'s ``tokens``)
STEER_TOKENS = {"mean_diff_generated": "generated", "mat_generated": "generated"}


def own_texts(model, tok, prompts: list[str], per_prompt: int = 4, max_new_tokens: int = 40, seed: int = 0) -> list[str]:
    """The model's own text: ``per_prompt`` sampled continuations (temperature 1) of each prompt, with it."""
    from steerkit.generate import encode_prompts

    torch.manual_seed(seed)
    enc = encode_prompts(tok, [p for p in prompts for _ in range(per_prompt)])
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    start = enc["input_ids"].shape[1]
    return [p + tok.decode(o[start:], skip_special_tokens=True)
            for p, o in zip([p for p in prompts for _ in range(per_prompt)], out)]


DATA_VARIANTS = ("pairs", "pairs_own", "own")


def data_variants(pool: list[dict], per_class: int, own: list[str]) -> dict:
    """Builders of each data variant's draw by seed (``Draw.other``), by name (``DATA_VARIANTS``):
    ``pairs``: sentiment's negatives are the negative sentences only (contrastive pairs, as a user writes
    them); ``pairs_own``: those plus ``own`` as every attribute's negatives; ``own``: the built-in data
    plus ``own`` as every attribute's negatives."""
    from steerkit.steerbench import corpus
    from steerkit.steerbench.data import Draw as DataDraw, draw

    neutral = set(corpus.sentiment_texts()["neutral"])
    pairs = [r for r in pool if not (r["attribute"] == "sentiment" and r["text"] in neutral)]
    attrs = list(dict.fromkeys(r["attribute"] for r in pool))
    mine = lambda: [dict(text=t, attribute=a, label="negative") for a in attrs for t in own]

    def with_own(d):
        return DataDraw(d.seed, d.train + mine(), d.carrying)

    return {"pairs": lambda seed: draw(pairs, seed, per_class, 1),
            "pairs_own": lambda seed: with_own(draw(pairs, seed, per_class, 1)),
            "own": lambda seed: with_own(draw(pool, seed, per_class, 1))}


def mean_gates(model, tok, v, texts, site, layer) -> list[float] | None:
    """Each attribute's gate averaged over every token of ``texts`` (None for ungated vectors). The gate
    at a token reads the unsteered activation there, which steering at this layer does not change, so
    one plain forward over the finished texts gives the gates the steered generation used."""
    from steerkit.mat.collect import text_activations

    if v.gate_mode != "sigmoid" or (site, layer) not in v:
        return None
    e = v[(site, layer)]
    acts = text_activations(model, tok, texts, site, layer)
    g = torch.cat([torch.sigmoid(acts[t].float() @ e.gate_w.float().T + e.gate_b.float()) for t in texts])
    return [round(float(x), 3) for x in g.mean(0)]


def measure(r, v, prompts, base, attrs, strengths, site, layer, tokens: str = "all") -> dict:
    from steerkit.steerbench.measures import frontier
    from steerkit.steerbench.run import Point, calibrate
    from steerkit.steerbench.runner import Job

    k = len(attrs)
    one = lambda i, x: [float(x) if j == i else 0.0 for j in range(k)]
    swept = iter(r.measure([Job(prompts, one(i, x)) for i in range(k) for x in strengths], v, tokens))
    fr, cal = {}, []
    for i, a in enumerate(attrs):
        pts = []
        for x in strengths:
            sc = next(swept)[0]
            pts.append(Point(0, "", a, x, "sweep", {b: sc["judge"][b] - base["judge"][b] for b in attrs},
                             sc["nll"] - base["nll"], sc["distinct3"]))
        curve = [(0.0, 0.0)] + [(p.dnll, p.judge[a]) for p in pts]
        fr[a] = [round(frontier(curve, b), 4) for b in BUDGETS]
        cal.append(calibrate(pts, 0.5))
    got = r.measure([Job(prompts, one(i, c)) for i, c in enumerate(cal)] + [Job(prompts, list(cal))], v, tokens)
    alone = [got[i][0]["judge"][a] - base["judge"][a] for i, a in enumerate(attrs)]
    both = [got[-1][0]["judge"][a] - base["judge"][a] for a in attrs]
    full = lambda g: [p + t for p, t in zip(prompts, g[2])]
    return {"frontier": fr, "strength": [round(c, 3) for c in cal], "alone": [round(x, 4) for x in alone],
            "both": [round(x, 4) for x in both],
            "retention": [round(b / x, 3) if x > 1e-9 else 0.0 for b, x in zip(both, alone)],
            "dnll_both": round(got[-1][0]["nll"] - base["nll"], 4),
            "distinct3": [round(got[i][0]["distinct3"], 3) for i in range(k)],
            "gates_alone": [mean_gates(r.model, r.tok, v, full(got[i]), site, layer) for i in range(k)],
            "gates_both": mean_gates(r.model, r.tok, v, full(got[-1]), site, layer)}


def table(rows: list[dict], attrs: list[str]) -> str:
    """Per lever: mean frontier per attribute and budget, cells on or above the mean difference's
    frontier, retention per draw."""
    by = {}
    for row in rows:
        by.setdefault(row["lever"], {})[row["seed"]] = row
    seeds = sorted({row["seed"] for row in rows})
    head = (["lever"] + [f"{a} ≤ +{b:g}" for a in attrs for b in BUDGETS] + ["cells ≥ mean diff"]
            + [f"kept {a}, draw {s}" for a in attrs for s in seeds] + ["distinct-3", "train s"])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for lever, per in by.items():
        cells = [f"{statistics.fmean(per[s]['frontier'][a][j] for s in per):+.3f}" for a in attrs
                 for j in range(len(BUDGETS))]
        md = by.get(BASELINE.get(lever, "mean_diff"), {})
        if md and lever not in ("mean_diff", *BASELINE.values()):
            won = [per[s]["frontier"][a][j] >= md[s]["frontier"][a][j] for s in per if s in md for a in attrs
                   for j in range(len(BUDGETS))]
            cells.append(f"{sum(won)} of {len(won)}")
        else:
            cells.append("-")
        cells += [f"{per[s]['retention'][i]:.2f}" if s in per else "-" for i in range(len(attrs)) for s in seeds]
        cells.append(f"{statistics.fmean(x for s in per for x in per[s]['distinct3']):.3f}")
        cells.append(f"{statistics.fmean(per[s]['train_s'] for s in per):.0f}")
        lines.append(f"| {LEVERS[lever][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_table(files: list[str]) -> int:
    rows, seen, models_seen = [], set(), set()
    for name in files:
        try:
            lines = [json.loads(x) for x in Path(name).read_text().splitlines() if x.strip()]
        except (OSError, ValueError) as e:
            print(f"--table: cannot read {name}: {e}", file=sys.stderr)
            return 2
        if not lines or "model" not in lines[0]:
            print(f"--table: {name} is not a levers.jsonl (no header line)", file=sys.stderr)
            return 2
        models_seen.add((lines[0]["model"], lines[0]["layer"], lines[0]["prompts"]))
        for row in lines[1:]:
            if (row["lever"], row["seed"]) not in seen:
                seen.add((row["lever"], row["seed"]))
                rows.append(row)
    if len(models_seen) > 1:
        print(f"--table: the files measured different models, layers or prompts: {sorted(models_seen)}", file=sys.stderr)
        return 2
    print(table(rows, [a for a in rows[0]["frontier"]] if rows else []))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--seeds", nargs="+", type=int, default=[1000, 1001], help="development draws (not 0-2)")
    ap.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    ap.add_argument("--site", default="block_out")
    ap.add_argument("--layer", type=int, default=None, help="default: 40%% of the depth, as bench-steer")
    ap.add_argument("--strengths", nargs="+", type=float, default=[2.0, 4.0, 8.0, 16.0])
    ap.add_argument("--per-class", type=int, default=240, help="training texts per attribute and label (default 240)")
    ap.add_argument("--num-prompts", type=int, default=None,
                    help="development prompts (default: every built-in neutral prompt after the test's 24)")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("-o", "--out", help="folder for levers.jsonl and levers.md")
    ap.add_argument("--table", nargs="+", metavar="LEVERS_JSONL",
                    help="print one table of earlier runs of one model instead (a lever measured twice on a draw: "
                         "the first)")
    a = ap.parse_args(argv)
    if a.table:
        return print_table(a.table)
    if not a.out:
        print("--out: give a folder for the results (or --table to print earlier ones)", file=sys.stderr)
        return 2
    if any(s in (0, 1, 2) for s in a.seeds):
        print("--seeds: 0, 1 and 2 are the test's data seeds; use development draws (e.g. 1000 1001)", file=sys.stderr)
        return 2
    out = Path(a.out)
    try:  # where the results go, checked before the model loads
        out.mkdir(parents=True, exist_ok=True)
        (out / "levers.jsonl").touch()
    except OSError as e:
        print(f"--out: cannot write to {out}: {e}", file=sys.stderr)
        return 2

    import steerkit
    from steerkit import models
    from steerkit.steerbench import corpus, judges
    from steerkit.steerbench.config import BenchSettings
    from steerkit.steerbench.data import DEFAULT_ATTRIBUTES, builtin_pool, draw
    from steerkit.steerbench.run import _versions
    from steerkit.steerbench.runner import Job, Runner

    model, tok = steerkit.load_model(a.model)
    num_layers = models.resolve(model).num_layers
    layer = a.layer if a.layer is not None else int(0.4 * num_layers)
    s = BenchSettings(layer=layer, per_class=a.per_class, max_new_tokens=a.max_new_tokens)
    attrs = list(DEFAULT_ATTRIBUTES)
    pool = builtin_pool(attrs)
    prompts = list(corpus.PROMPTS_NEUTRAL)[s.prompts:][:a.num_prompts]  # prompts after the test's
    r = Runner(model, tok, attrs, s, judges.JUDGES)
    base = r.measure([Job(prompts)])[0][0]
    own = []
    if any(lever.endswith("own") for lever in a.levers):  # from the test's prompts: apart from the development ones
        t0 = time.perf_counter()
        own = own_texts(model, tok, list(corpus.PROMPTS_NEUTRAL)[:s.prompts])
        print(f"the model's own text: {len(own)} continuations in {time.perf_counter() - t0:.0f} s", flush=True)
    variants = data_variants(pool, s.per_class, own)
    rows = []
    with (out / "levers.jsonl").open("w") as f:
        f.write(json.dumps({"model": a.model, "site": a.site, "layer": layer, "prompts": len(prompts),
                            "seeds": a.seeds, "strengths": a.strengths, "versions": _versions(),
                            "own_texts": own}) + "\n")
        for seed in a.seeds:
            dd = Draw(model, tok, draw(pool, seed, s.per_class, 1), seed, a.site, layer, num_layers, variants)
            dd.acts()  # the main place's activations, outside any lever's time
            for lever in a.levers:
                t0 = time.perf_counter()
                v = LEVERS[lever][1](dd)
                row = dict(lever=lever, seed=seed, train_s=round(time.perf_counter() - t0, 1),
                           **measure(r, v, prompts, base, attrs, a.strengths, a.site, layer,
                                     STEER_TOKENS.get(lever, "all")))
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(f"draw {seed} {lever}: frontier {row['frontier']}, kept {row['retention']}", flush=True)
    md = (f"## MAT-Steer's levers on the development split: {a.model}, {a.site} layer {layer}\n\n"
          f"Development draws {', '.join(map(str, a.seeds))} ({s.per_class} texts per class), {len(prompts)} neutral "
          f"prompts after the test's, {s.max_new_tokens} greedy tokens, strengths {' '.join(f'{x:g}' for x in a.strengths)}; "
          f"frontier: judge shift within each ΔNLL budget (mean over draws); kept: each attribute's share of its "
          f"alone shift with both steered at their +0.5-nat strengths; distinct-3 of the continuations at those strengths, "
          f"each attribute alone (mean over attributes and draws); cells ≥ mean diff: (attribute, budget, draw) cells on or "
          f"above the mean difference's frontier on the same data and tokens; train s: building the vectors (with a data "
          f"variant's activations).\n\n" + table(rows, attrs) + "\n")
    (out / "levers.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
