"""``steerkit demo``: the whole MAT-Steer pipeline end to end, with nothing downloaded.

On the embedded toy (default): train (or load from the cache) a tiny Llama on a two-attribute review
corpus, collect activations at one site and layer, train MAT-Steer vectors for both attributes, then
generate from held-out prompts unsteered and steered toward each attribute and measure, by rule, how
often each attribute appears, what steering one does to the other, the gates on positive and negative
prompts, and the generation speed. With ``model``/``data`` the same pipeline runs on a local HF model
and a JSONL data set (no rule exists there, so it reports gates, samples and speed).
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch

from .. import mat
from ..generate import greedy
from ..hf import load_model
from ..mat.evaluate import gates
from ..patching import steer
from .toy import corpus
from .toy.model import ToySettings, cache_dir, toy_model

TOY_SITE, TOY_LAYER = "block_out", 1  # measured on the toy: see the README's demo section
# the strength of the attribute steered toward. Measured on toy seeds 0-4 (full recipe, 32 prompts): at 1
# formality moved by +6 to +50 points (3 of 5 seeds >= +30), at 2 by +34 to +50 on all five, at 3 it fell
# back to +6 on one seed; the other attribute moved by 0 points at every strength
STRENGTH = 2.0


@dataclass
class DemoReport:
    site: str
    layer: int
    attributes: list[str]
    rates: dict[str, dict[str, float]] = field(default_factory=dict)  # run -> attribute -> rate (toy only)
    follows: dict[str, float] = field(default_factory=dict)  # attribute -> unsteered keeps the prompt's value (toy)
    gates: dict[str, dict[str, float]] = field(default_factory=dict)  # attribute -> {neg, pos, auc[, auc_words]}
    speed: dict[str, float] = field(default_factory=dict)             # run -> new tokens per second
    samples: dict[str, list[str]] = field(default_factory=dict)       # run -> continuations

    def table(self) -> str:
        lines = []
        if self.rates:
            names = {a: corpus.ATTRIBUTES[a][0] for a in self.attributes}
            head = f"{'':20}" + "".join(f"{names[a] + ' rate':>22}" for a in self.attributes)
            lines += [head, "-" * len(head)]
            base = self.rates["unsteered"]
            for run, r in self.rates.items():
                cells = []
                for a in self.attributes:
                    d = 100 * (r[a] - base[a])
                    cells.append(f"{100 * r[a]:>12.1f} %" + (f" ({d:+5.1f})" if run != "unsteered" else " " * 8))
                lines.append(f"{run:20}" + "".join(cells))
            lines.append("")
        if self.follows:
            lines.append("unsteered, continuations that keep the prompt's value: "
                         + ", ".join(f"{a} {100 * v:.1f} %" for a, v in self.follows.items()))
            lines.append("")
        words = all("auc_words" in g for g in self.gates.values()) and self.gates
        lines.append(f"{'gate (mean)':20}{'on negative prompts':>22}{'on positive prompts':>22}{'AUC':>8}"
                     + (f"{'AUC on its words':>18}" if words else ""))
        for a, g in self.gates.items():
            lines.append(f"{a:20}{g['neg']:>22.3f}{g['pos']:>22.3f}{g['auc']:>8.3f}"
                         + (f"{g['auc_words']:>18.3f}" if words else ""))
        lines.append("")
        base = self.speed.get("unsteered")
        for run, tps in self.speed.items():
            ratio = f"  ({tps / base:.2f}x unsteered)" if base and run != "unsteered" else ""
            lines.append(f"{run:20}{tps:>10.0f} new tokens/s{ratio}")
        return "\n".join(lines)


    def shifts(self) -> dict[str, tuple[float, float]]:
        """Per attribute A: (change of A's rate, change of the other attribute's rate) when steering toward
        A, in points (toy only; two attributes)."""
        base, out = self.rates["unsteered"], {}
        for a in self.attributes:
            other = next(o for o in self.attributes if o != a)
            steered = self.rates[f"toward {a}"]
            out[a] = (100 * (steered[a] - base[a]), 100 * (steered[other] - base[other]))
        return out

    def meets_targets(self) -> bool:
        """The demo's claim (issue 17): the unsteered toy keeps each attribute of its prompts (>= 90 %), and
        steering toward each attribute raises its rate by >= TARGET_OWN points and moves the other by at
        most TARGET_OTHER."""
        return (min(self.follows.values(), default=0.0) >= 0.9
                and all(own >= TARGET_OWN and abs(other) <= TARGET_OTHER for own, other in self.shifts().values()))


TARGET_OWN, TARGET_OTHER = 30.0, 5.0  # points


def _follows(texts: list[str], prompts: list[tuple[str, bool, bool]]) -> dict[str, float]:
    found = [corpus.detect(t) for t in texts]
    want = [dict(sentiment=pos, formality=formal) for _, pos, formal in prompts]
    return {a: sum(f[a] is w[a] for f, w in zip(found, want)) / len(found) for a in corpus.ATTRIBUTES}


def _word_gate_auc(vecs, model, tok, prompts: list[str], site: str, layer: int) -> dict[str, float]:
    """Per attribute: the AUC of its gate on the tokens that carry it, its negative words against its
    positive words (the gates over all tokens also see tokens before any word of the attribute, where
    the two sides cannot differ)."""
    acts = mat.text_activations(model, tok, prompts, site, layer)
    neg = {a: [] for a in vecs.attributes}
    pos = {a: [] for a in vecs.attributes}
    for p in prompts:
        words = tok.convert_ids_to_tokens(tok(p)["input_ids"])
        g = gates(vecs, acts[p], site, layer)
        for k, a in enumerate(vecs.attributes):
            for i, w in enumerate(words):
                if w in corpus.WORDS[(a, False)]:
                    neg[a].append(g[i, k])
                elif w in corpus.WORDS[(a, True)]:
                    pos[a].append(g[i, k])
    return {a: mat.auc(torch.stack(neg[a]), torch.stack(pos[a])) for a in vecs.attributes}


def _rates(texts: list[str], attributes: list[str]) -> dict[str, float]:
    found = [corpus.detect(t) for t in texts]
    return {a: sum(f[a] is True for f in found) / len(found) for a in attributes}


def _gate_means(vecs, model, tok, examples, site, layer) -> dict[str, dict[str, float]]:
    acts = mat.collect_activations(model, tok, examples, site=site, layer=layer, progress=False)
    return {a: dict(neg=r["gate_neg"], pos=r["gate_pos"], auc=r["auc"])
            for a, r in mat.gate_report(vecs, acts).items()}


def run(model_path=None, data=None, site: str | None = None, layer: int | None = None, quick: bool = False,
        prompts: int | None = None, max_new_tokens: int = 16, config: mat.MATConfig | None = None,
        strength: float = STRENGTH,
        seed: int = 0, retrain: bool = False, log=print, toy_seed: int = 0) -> DemoReport:
    """Runs the demo and returns its report (``report.table()`` is what the CLI prints). ``quick``: the
    same vectors, continuations of 32 prompts instead of 64 (``prompts`` sets it). ``toy_seed``:
    the seed the toy model is trained from (each is trained once and cached)."""
    if (model_path is None) != (data is None):
        raise ValueError("--model and --data go together: a local model and its JSONL data, or neither (the toy)")
    prompts = prompts or (32 if quick else 64)
    toy = model_path is None
    if toy:
        model, tok, _ = toy_model(ToySettings(seed=toy_seed), retrain=retrain, log=log)
        examples = corpus.mat_examples(400)
        site, layer = site or TOY_SITE, TOY_LAYER if layer is None else layer
        held_out = corpus.prompts(prompts)
        gate_examples = [{"text": p, "attribute": a, "label": "positive" if want else "negative"}
                         for p, pos, formal in held_out for a, want in (("sentiment", pos), ("formality", formal))]
        gen_prompts = [p for p, _, _ in held_out]
    else:
        if site is None or layer is None:
            raise ValueError("with --model and --data, give --site and --layer (where to learn and apply the vectors)")
        model, tok = load_model(model_path)
        rows = mat.load_examples(data)
        random.Random(seed).shuffle(rows)
        cut = max(1, len(rows) // 5)
        gate_examples, examples = [r.__dict__ for r in rows[:cut]], rows[cut:]
        gen_prompts = [r["text"] for r in gate_examples if r["label"] == "negative"][:prompts]
    # measured on the toy (issue 17): the paper's lr 1e-3 needs about 20 epochs here (30 s). Shorter runs
    # were weaker: 10 epochs at lr 2e-3 moved formality +28 points on seed 0; 4 epochs at lr 1e-2, with
    # every vector editing every attribute's negatives, moved the other attribute on 3 of 5 toys.
    cfg = config or mat.MATConfig(seed=seed)  # the scaled recipe's 20 epochs
    log(f"collecting activations at {site} layer {layer} ...")
    acts = mat.collect_activations(model, tok, examples, site=site, layer=layer,
                                   cache_dir=cache_dir() / "activations", progress=False)
    log(f"  {acts}")
    log(f"training MAT-Steer ({cfg.recipe} recipe, {cfg.resolved_epochs()} epochs) ...")
    t0 = time.perf_counter()
    vecs = mat.train(acts, cfg, progress=False)
    terms = ", ".join(f"{k} {v:.3g}" for k, v in vecs.provenance["final_loss"].items())
    log(f"  done in {time.perf_counter() - t0:.1f} s; last epoch's loss: {terms}")

    report = DemoReport(site, layer, list(vecs.attributes))
    report.gates = _gate_means(vecs, model, tok, gate_examples, site, layer)
    if toy:
        for a, v in _word_gate_auc(vecs, model, tok, gen_prompts, site, layer).items():
            report.gates[a]["auc_words"] = v
    runs = {"unsteered": None}
    for k, a in enumerate(vecs.attributes):
        s = torch.zeros(vecs.num_attributes)
        s[k] = strength
        runs[f"toward {a}"] = s
    for name, s in runs.items():
        if s is None:
            texts, tps = greedy(model, tok, gen_prompts, max_new_tokens)
        else:
            with steer(model, vecs, strength=s):
                texts, tps = greedy(model, tok, gen_prompts, max_new_tokens)
        report.samples[name], report.speed[name] = texts, tps
        if toy:
            report.rates[name] = _rates(texts, report.attributes)
            if s is None:
                report.follows = _follows(texts, held_out)
    report.vectors = vecs
    return report


def run_seeds(toy_seeds, log=print, **options) -> dict[int, DemoReport]:
    """The toy demo once per toy seed: a result that holds on one trained toy is an anecdote; the rate
    over several is the result."""
    reports = {}
    for t in toy_seeds:
        log(f"toy seed {t}:")
        reports[t] = run(toy_seed=t, log=log, **options)
    return reports


def seeds_table(reports: dict[int, DemoReport]) -> str:
    """One row per toy seed: whether the unsteered toy keeps each attribute of its prompts, the change of
    each rate when steering toward each attribute (own / other, points), the gate AUCs over all tokens
    and on the attribute's words, and the rate of seeds that meet the targets."""
    first = next(iter(reports.values()))
    a, b = first.attributes
    head = (f"{'toy seed':>8}{'keeps ' + a[:4]:>11}{'keeps ' + b[:4]:>11}{'to ' + a[:4] + ' own':>13}{'other':>7}"
            f"{'to ' + b[:4] + ' own':>13}{'other':>7}{'AUC ' + a[:4]:>10}{'words':>7}{'AUC ' + b[:4]:>10}"
            f"{'words':>7}{'meets':>7}")
    lines = [head, "-" * len(head)]
    for seed, r in reports.items():
        sh = r.shifts()
        lines.append(f"{seed:>8}{100 * r.follows[a]:>10.1f}%{100 * r.follows[b]:>10.1f}%"
                     f"{sh[a][0]:>+13.1f}{sh[a][1]:>+7.1f}{sh[b][0]:>+13.1f}{sh[b][1]:>+7.1f}"
                     f"{r.gates[a]['auc']:>10.3f}{r.gates[a]['auc_words']:>7.3f}"
                     f"{r.gates[b]['auc']:>10.3f}{r.gates[b]['auc_words']:>7.3f}"
                     f"{'yes' if r.meets_targets() else 'no':>7}")
    met = sum(r.meets_targets() for r in reports.values())
    lines.append(f"{met} of {len(reports)} toy seeds meet the targets (keeps both >= 90 %; toward each attribute: "
                 f"own >= +{TARGET_OWN:.0f} points, other within {TARGET_OTHER:.0f})")
    return "\n".join(lines)
