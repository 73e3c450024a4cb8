"""The benchmark: every method over a strength sweep on one model, judged, over several data seeds.

Per data seed: activations of the drawn training texts at each method's place (one (site, layer) for
all, or each method's own, chosen first on a development split: ``place``); each method's vectors from
them; greedy continuations of held-out neutral prompts, unsteered and steered toward each attribute at
each strength, in a few batched ``generate`` calls (``runner``). From the sweep, per method and
attribute:

* the **frontier**: the most judge shift reached within a fluency budget (ΔNLL per token under the
  unsteered model), along the sweep taken as a piecewise-linear curve from the unsteered point;
* the **calibrated strength**: where the sweep's ΔNLL crosses ``calibration_budget``.

At the calibrated strength each method is run once more to measure, at a matched fluency cost:
**interference** (how far the other attribute's judge moves), **selectivity** (the share of tokens
changed in continuations of prompts that already carry the attribute) and **all at once** (each
attribute's shift when every attribute is steered together, and with three or more each pair, against
each alone: the retention).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import statistics
import time
from dataclasses import asdict, dataclass, field, replace

import torch

from ..mat.collect import text_activations
from ..vectors import SteeringVectors
from . import judges as judges_module
from . import measures, place
from .config import BenchSettings
from .data import Draw, builtin_pool, draw
from .measures import frontier
from .methods import PROMPTS, VECTOR_METHODS, build
from .runner import Job, Runner, activations

DEFAULT_MODEL = "smollm2"


@dataclass
class Point:
    """One generation run on one seed, as shifts from that seed's unsteered run on the same prompts."""

    seed: int
    method: str
    attribute: str            # the attribute steered ("both": every attribute at once; "a+b": a pair)
    strength: float | list    # a number, or one per attribute for "both"
    kind: str                 # "sweep", "calibrated", "carrying", "pair" or "both"
    judge: dict               # attribute -> shift of its judge's mean score
    dnll: float               # shift of the mean NLL per token under the unsteered model
    distinct3: float
    changed: float | None = None  # carrying runs: share of tokens that differ from unsteered
    sample: str = ""


@dataclass
class BenchResult:
    model: str
    settings: dict
    attributes: list
    points: list = field(default_factory=list)
    baseline: dict = field(default_factory=dict)   # seed -> unsteered judge means, NLL, distinct-3
    samples: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    vectors: dict = field(default_factory=dict)    # method -> the first seed's vectors (not in the JSON)
    places: dict = field(default_factory=dict)     # method -> "site@layer" it steers at
    place_choice: dict = field(default_factory=dict)  # the development split's sweep, when it chose them

    def suggested(self, method: str = "mat") -> SteeringVectors:
        """``method``'s vectors from the first seed, with the strength that reaches the calibration budget
        (mean over seeds) for each attribute in their provenance: ``suggested_strength``."""
        summary = summarize(self)
        v = self.vectors[method]
        strength = [summary[f"{method}/{a}"]["strength"]["mean"] for a in self.attributes]
        provenance = dict(v.provenance, suggested_strength=strength,
                          suggested_for=f"+{self.settings['calibration_budget']:g} nats per token of NLL under the "
                                        f"unsteered model ({self.model}, steerkit bench-steer)")
        if self.place_choice:
            provenance["place_chosen_by"] = dict(
                how="bench-steer's development split: frontier at the calibration budget, per attribute over the "
                    "best any method reached, averaged", place=self.places[method],
                score=self.place_choice["score"][method])
        return SteeringVectors({k: v[k] for k in v}, v.attributes, v.gate_mode, v.norm_preserve, provenance)

    def to_json(self) -> dict:
        return dict(model=self.model, settings=self.settings, attributes=self.attributes,
                    points=[asdict(p) for p in self.points], baseline=self.baseline, samples=self.samples,
                    seconds=self.seconds, versions=self.versions, places=self.places,
                    place_choice=self.place_choice, summary=summarize(self))


# -- the frontier and calibration ---------------------------------------------------------------------
def _curve(points: list[Point], attribute: str) -> list[tuple[float, float]]:
    """(ΔNLL, judge shift) along the sweep in strength order, from the unsteered point (0, 0)."""
    pts = sorted(points, key=lambda p: p.strength)
    return [(0.0, 0.0)] + [(p.dnll, p.judge[attribute]) for p in pts]


def calibrate(points: list[Point], budget: float) -> float:
    """The strength at which the sweep's ΔNLL first reaches ``budget`` (linear between sweep points,
    from 0 at strength 0); the largest strength swept when it never does."""
    pts = sorted(points, key=lambda p: p.strength)
    s0, x0 = 0.0, 0.0
    for p in pts:
        if p.dnll >= budget:
            return s0 + (p.strength - s0) * (budget - x0) / max(p.dnll - x0, 1e-9)
        s0, x0 = p.strength, max(x0, p.dnll)
    return pts[-1].strength


# -- one run ----------------------------------------------------------------------------------------
def run(model, tok, settings: BenchSettings | None = None, pool: list[dict] | None = None,
        prompts: list[str] | None = None, judges: dict | None = None, model_name: str = DEFAULT_MODEL,
        mat_config=None, log=print, progress: "Progress | None" = None) -> BenchResult:
    """Runs the benchmark on a loaded model. ``pool``: ``{text, attribute, label}`` rows (default: the
    built-in sentiment and food texts); ``prompts``: neutral prompts (default: the built-in ones);
    ``judges``: attribute -> callable scoring a list of texts (default: ``judges.JUDGES``);
    ``mat_config``: the ``mat`` method's MATConfig (default: ``MATConfig()``, steerkit's default);
    ``progress``: a ``Progress`` file that gets every point as it is measured, and whose points from an
    earlier run with the same settings are taken instead of measured again."""
    from .. import models
    from . import corpus

    s = settings or BenchSettings()
    s.check()
    judges = judges or judges_module.JUDGES
    pool = pool if pool is not None else builtin_pool()
    attributes = list(dict.fromkeys(r["attribute"] for r in pool))
    judges_module.check_attributes(attributes, judges, s.methods)
    layout = models.resolve(model)
    layer = s.layer if s.layer is not None else int(0.4 * layout.num_layers)
    if not 0 <= layer < layout.num_layers:
        raise ValueError(f"layer must be in 0..{layout.num_layers - 1}, got {layer}")
    s = replace(s, layer=layer)
    all_prompts = list(prompts or corpus.PROMPTS_NEUTRAL)
    prompts = all_prompts[:s.prompts]
    candidates = place.candidates(s.places, layout.num_layers) if s.places else []
    dev = place.dev_prompts(all_prompts, s) if candidates else []
    result = BenchResult(model_name, asdict(s), attributes, versions=_versions())
    data = hashlib.sha256(json.dumps([pool, all_prompts]).encode()).hexdigest()[:16]  # the texts, in the header
    done = progress.start(result, data) if progress is not None else {}
    if done:
        log(f"resuming: {len(done)} points measured earlier are taken from {progress.path}")
    r = Runner(model, tok, attributes, s, judges, mat_config)
    t0 = time.perf_counter()
    vector_methods = [m for m in s.methods if m in VECTOR_METHODS]
    if candidates and vector_methods:
        result.place_choice = (progress.place_choice if progress is not None else None) or place.choose(
            r, pool, dev, candidates, log)
        if progress is not None:
            progress.keep_place_choice(result.place_choice)
        result.places = dict(result.place_choice["chosen"])
        result.seconds["choosing places"] = time.perf_counter() - t0
        log(f"places chosen on the development split in {result.seconds['choosing places']:.0f} s: "
            + ", ".join(f"{m} {p}" for m, p in result.places.items()))
    else:
        result.places = {m: f"{s.site}@{layer}" for m in vector_methods}
    t1 = time.perf_counter()
    draws = [draw(pool, seed, s.per_class, s.carrying_prompts) for seed in s.seeds]
    texts = sorted({x["text"] for d in draws for x in d.train})  # the texts some seed trains on
    pool_rows = {p: text_activations(model, tok, texts, *place.parse_place(p))
                 for p in dict.fromkeys(result.places.values())}
    result.seconds["activations"] = time.perf_counter() - t1
    log(f"activations of {len(texts)} texts at {', '.join(pool_rows)}: {result.seconds['activations']:.0f} s")
    for d in draws:
        _one_seed(r, result, d, pool_rows, prompts, log, done, progress)
    result.seconds["total"] = time.perf_counter() - t0
    return result


def _one_seed(r: Runner, result: BenchResult, d: Draw, pool_rows, prompts, log, done: dict,
              progress: "Progress | None") -> None:
    s, attrs, seed = r.s, r.attributes, d.seed
    t0 = time.perf_counter()
    acts = {p: activations(r.model, r.tok, rows, d, *place.parse_place(p)) for p, rows in pool_rows.items()}
    vectors = {}
    for m in s.methods:
        if m in VECTOR_METHODS:
            t1 = time.perf_counter()
            vectors[m] = build(m, acts[result.places[m]], seed, s.mat_epochs, r.mat_config)
            result.vectors.setdefault(m, vectors[m])
            result.seconds[f"train {m} seed {seed}"] = time.perf_counter() - t1
    unsteered = r.measure([Job(prompts)] + [Job(d.carrying[a], carrying=True) for a in attrs])
    base, base_texts = unsteered[0][0], unsteered[0][2]
    carrying = {a: got[1] for a, got in zip(attrs, unsteered[1:])}
    carrying_base = {a: got[0] for a, got in zip(attrs, unsteered[1:])}
    result.baseline[str(seed)] = dict(base, carrying=carrying_base)
    result.samples.setdefault("unsteered", base_texts[0])

    def points(specs, vectors=None) -> list[Point]:
        """The points of ``specs`` [(method, attribute, strength, kind, Job)] in order: those an earlier
        run measured with the same settings taken, the others measured in one batch."""
        keys = [point_key(seed, *spec[:4]) for spec in specs]
        todo = [(key, spec) for key, spec in zip(keys, specs) if key not in done]
        measured = dict(zip((key for key, _ in todo), r.measure([spec[4] for _, spec in todo], vectors)))
        out = []
        for key, (method, attr, strength, kind, job) in zip(keys, specs):
            p = done.get(key)
            if p is None:
                got, ids, texts = measured[key]
                ref = carrying_base[attr] if job.carrying else base  # carrying runs: shifts from their own prompts
                shift = {a: got["judge"][a] - ref["judge"][a] for a in attrs}
                changed = statistics.fmean(measures.changed(ids, carrying[attr])) if job.carrying else None
                p = Point(seed, method, attr, strength, kind, shift, got["nll"] - ref["nll"], got["distinct3"], changed,
                          "" if job.carrying else texts[0])
                if progress is not None:
                    progress.add(p)
            result.points.append(p)
            out.append(p)
        return out

    def only(k, value):
        v = [0.0] * len(attrs)
        v[k] = float(value)
        return v

    for m in s.methods:
        if m == "prompt":
            points([spec for a in attrs for spec in (
                (m, a, 1.0, "calibrated", Job(prompts, prefix=PROMPTS[a])),
                (m, a, 1.0, "carrying", Job(d.carrying[a], prefix=PROMPTS[a], carrying=True)))])
            continue
        v = vectors[m]
        # the sweep of every attribute in one batch, then what its calibration picks in a second
        swept = points([(m, a, value, "sweep", Job(prompts, only(k, value)))
                        for k, a in enumerate(attrs) for value in s.strengths], v)
        calibrated = [calibrate([p for p in swept if p.attribute == a], s.calibration_budget) for a in attrs]
        specs = [spec for k, (a, c) in enumerate(zip(attrs, calibrated)) for spec in (
            (m, a, c, "calibrated", Job(prompts, only(k, c))),
            (m, a, c, "carrying", Job(d.carrying[a], only(k, c), carrying=True)))]
        if len(attrs) > 2:  # each pair at once, the others unsteered
            for i, j in itertools.combinations(range(len(attrs)), 2):
                mix = [c if k in (i, j) else 0.0 for k, c in enumerate(calibrated)]
                specs.append((m, f"{attrs[i]}+{attrs[j]}", mix, "pair", Job(prompts, mix)))
        if len(attrs) > 1:
            specs.append((m, "both", calibrated, "both", Job(prompts, list(calibrated))))
        points(specs, v)
        log(f"seed {seed} {m}: calibrated strengths " + ", ".join(f"{a} {c:.2f}" for a, c in zip(attrs, calibrated)))
    result.seconds[f"seed {seed}"] = time.perf_counter() - t0
    log(f"seed {seed} done in {result.seconds[f'seed {seed}']:.0f} s")


# -- keeping the work ---------------------------------------------------------------------------------
def point_key(seed: int, method: str, attribute: str, strength, kind: str) -> str:
    """A point's identity within one run's settings (strengths as JSON writes them, so a point read
    back from the progress file has the key it was written with)."""
    return json.dumps([seed, method, attribute, strength, kind])


class Progress:
    """``progress.jsonl`` in the output folder: a header line (model, settings, attributes, a digest of
    the texts), the development split's choice of places when there is one, then one line per point
    as soon as its batch is measured, flushed, so stopping a run loses at most the batch in progress. ``resume=True`` takes the points of a file with the same header; a header that differs
    is refused, since those points measured something else."""

    NAME = "progress.jsonl"

    def __init__(self, folder, resume: bool = False):
        from pathlib import Path

        self.path = Path(folder) / self.NAME
        self.resume = resume
        self._file = None
        self.place_choice: dict | None = None  # an earlier run's, read back

    def start(self, result: BenchResult, data: str) -> dict:
        """The points measured earlier ({key: Point}); opens the file to add to. ``data``: a digest of the
        training texts and prompts, which the settings do not name."""
        header = json.loads(json.dumps(dict(model=result.model, settings=result.settings,  # tuples as lists
                                            attributes=result.attributes, data=data)))
        done: dict = {}
        if self.resume and self.path.is_file():
            lines = self.path.read_text().splitlines()
            first = json.loads(lines[0]) if lines else {}
            if first.get("header") != header:
                raise ValueError(f"--resume: {self.path} was written by a run with another model, settings or data "
                                 f"({first.get('header')}); use a new --out folder or the same ones")
            for line in lines[1:]:
                try:
                    row = json.loads(line)
                    if "places" in row:
                        self.place_choice = row["places"]
                        continue
                    p = Point(**row["point"])
                except (ValueError, KeyError, TypeError):  # a line torn by the stop
                    continue
                done[point_key(p.seed, p.method, p.attribute, p.strength, p.kind)] = p
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w")
        self._write(dict(header=header))
        if self.place_choice is not None:
            self._write(dict(places=self.place_choice))
        for p in done.values():  # rewritten whole, so a torn last line is gone
            self._write(dict(point=asdict(p)))
        return done

    def keep_place_choice(self, choice: dict) -> None:
        if self.place_choice is None:
            self.place_choice = choice
            self._write(dict(places=choice))

    def add(self, p: Point) -> None:
        self._write(dict(point=asdict(p)))

    def _write(self, row: dict) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()


def _versions() -> dict:
    import platform

    import transformers

    from .. import __version__
    return dict(steerkit=__version__, torch=torch.__version__, transformers=transformers.__version__,
                python=platform.python_version())


# -- the summary ----------------------------------------------------------------------------------------
def _spread(values: list[float]) -> dict:
    return dict(mean=statistics.fmean(values), sd=statistics.stdev(values) if len(values) > 1 else 0.0,
                per_seed=values)


def _kept(together: Point, alone: Point, attribute: str) -> float:
    """The share of its shift alone that ``attribute`` keeps when steered together with others."""
    return together.judge[attribute] / alone.judge[attribute] if alone.judge[attribute] > 1e-9 else 0.0


def summarize(result: BenchResult) -> dict:
    """Per method and attribute: frontier at each budget, calibrated strength, interference,
    selectivity, all attributes at once and the share of the alone shift kept there (retention),
    each over seeds (mean, sd, per seed)."""
    s = result.settings
    seeds = [int(k) for k in result.baseline]
    out: dict = {}
    for m in s["methods"]:
        for a in result.attributes:
            mine = [p for p in result.points if p.method == m and p.attribute == a]
            row: dict = {}
            if m != "prompt":
                for b in s["budgets"]:
                    row[f"frontier@{b}"] = _spread([frontier(_curve([p for p in mine if p.seed == sd and p.kind == "sweep"],
                                                                    a), b) for sd in seeds])
            cal = {p.seed: p for p in mine if p.kind == "calibrated"}
            car = {p.seed: p for p in mine if p.kind == "carrying"}
            others = [o for o in result.attributes if o != a]
            row["strength"] = _spread([float(cal[sd].strength) for sd in seeds])
            row["target"] = _spread([cal[sd].judge[a] for sd in seeds])
            row["dnll"] = _spread([cal[sd].dnll for sd in seeds])
            row["distinct3"] = _spread([cal[sd].distinct3 for sd in seeds])
            if others:
                row["interference"] = _spread([max(abs(cal[sd].judge[o]) for o in others) for sd in seeds])
            row["changed_carrying"] = _spread([car[sd].changed for sd in seeds])
            row["carrying_target"] = _spread([car[sd].judge[a] for sd in seeds])
            both = {p.seed: p for p in result.points if p.method == m and p.kind == "both"}
            if both:
                row["both_target"] = _spread([both[sd].judge[a] for sd in seeds])
                # the share of its alone shift an attribute keeps when every attribute is steered at once
                row["retention"] = _spread([_kept(both[sd], cal[sd], a) for sd in seeds])
            for o in others:  # each pair at once (three attributes or more)
                pair = {p.seed: p for p in result.points if p.method == m and p.kind == "pair"
                        and set(p.attribute.split("+")) == {a, o}}
                if pair:
                    row[f"retention with {o}"] = _spread([_kept(pair[sd], cal[sd], a) for sd in seeds])
            out[f"{m}/{a}"] = row
    return out
