"""``steerkit demo --focus --model smollm2``: Focus Instruction Tuning on a real instruction-tuned model.

The task is ``focus.reviews``: travel reviews whose sentiment decides the label, while the city they
name is tied to a label in 90% of the training examples. For each seed (the data draw, the LoRA
initialisation and the order), FIT (LoRA on focus-instruction prompts of every type) and plain SFT
(the same examples and LoRA, no focus instruction) are trained from the same base and scored per focus
type on three test splits: ``iid`` (90% agreement, as in training), ``flipped`` (the city always tied
to the other label) and ``unseen`` (cities never seen in training, so only the core family, whose
target is the sentiment, is defined). The paper's claim is judged on the flipped split: FIT follows
focus(C) and focus(S) there, SFT cannot be steered off the feature it learned."""
from __future__ import annotations

import json
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .. import focus
from ..focus import reviews
from ..focus.config import PER_DISAGREEING, PER_EXAMPLE

SPLITS = ("iid", "flipped", "unseen")
# the targets of issue 28 on the flipped split (and the unseen one), per seed
TARGETS = (("FIT", "flipped", "focus_c", ">=", 0.9), ("FIT", "flipped", "focus_s", ">=", 0.9),
           ("SFT", "flipped", "focus_s", "<=", 0.6), ("FIT", "unseen", "focus_c", ">=", 0.8))


@dataclass(frozen=True)
class FitRecipe:
    """What one seed trains and scores. Training is ``steerkit fit``'s defaults (focus.config) on the
    task's examples at 90% agreement, unless set here."""
    examples: int = 240
    agree: float = 0.9  # how often the city's tied label is the true label in training
    test: int = 40  # examples per test split, each under every focus type it defines
    splits: tuple[str, ...] = SPLITS
    methods: tuple[str, ...] = ("FIT", "SFT")
    per_example: int | str = PER_EXAMPLE
    per_disagreeing: int | str = PER_DISAGREEING
    epochs: float | None = None  # None: FocusTrainConfig's
    lr: float | None = None  # the first rate tried
    retry_lrs: tuple[float, ...] | None = None  # None: FocusTrainConfig's (tried where a family is unfollowed)
    retry_epochs: float | None = None  # None: FocusTrainConfig's
    r: int | None = None
    head: bool | None = None
    batch_size: int | None = None
    dtype: str | None = None  # the base's weights in training ("bfloat16"); None: as the model loads (fp32 here)
    val_disagreeing: int | None = None  # None: FocusTrainConfig's
    val_flipped: bool | None = None  # None: FocusTrainConfig's

    @classmethod
    def from_dict(cls, d: dict) -> "FitRecipe":
        """The recipe as ``asdict`` wrote it into fit.json (lists back to tuples; fields it lacks at their
        defaults, so an earlier file reads too)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"recipe: unknown field(s) {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def quick(cls) -> "FitRecipe":
        """What CI runs on the real model (about 15 minutes on 2 cores): FIT alone, trained as in the full
        run (the training draw does not depend on the test size, so seed s trains the same model), scored
        on 16 reviews of the flipped and unseen splits. Shorter training missed focus(S) on the flipped
        split (seed 0; README): 120 reviews at 80% agreement gave 0.00 after 2 epochs, 0.75 after 3."""
        return cls(test=16, splits=("flipped", "unseen"), methods=("FIT",))

    def config(self, seed: int, progress: bool) -> focus.FocusTrainConfig:
        d = focus.FocusTrainConfig()
        return focus.FocusTrainConfig(epochs=self.epochs or d.epochs, lr=self.lr or d.lr,
                                      retry_lrs=d.retry_lrs if self.retry_lrs is None else tuple(self.retry_lrs),
                                      retry_epochs=self.retry_epochs or d.retry_epochs,
                                      batch_size=self.batch_size or d.batch_size, seed=seed, progress=progress,
                                      val_disagreeing=d.val_disagreeing if self.val_disagreeing is None
                                      else self.val_disagreeing,
                                      val_flipped=d.val_flipped if self.val_flipped is None else self.val_flipped)

    def lora(self) -> focus.LoraSettings:
        d = focus.LoraSettings()
        return focus.LoraSettings(r=self.r or d.r, alpha=2 * (self.r or d.r),
                                  head=d.head if self.head is None else self.head)


@dataclass
class SeedRun:
    reports: dict[str, focus.FocusReport]  # method -> its report
    seconds: dict = field(default_factory=dict)
    val_loss: dict = field(default_factory=dict)
    val_focus: dict = field(default_factory=dict)  # method -> the kept checkpoint's validation focus metrics
    steps: dict = field(default_factory=dict)
    lr: dict = field(default_factory=dict)  # method -> the learning rate of the try kept
    epochs: dict = field(default_factory=dict)  # method -> the epochs of the try kept
    tries: dict = field(default_factory=dict)  # method -> focus.FocusTrainResult.tries

    @classmethod
    def from_dict(cls, d: dict) -> "SeedRun":
        reports = {m: focus.FocusReport(r["accuracy"], r["count"]) for m, r in d["reports"].items()}
        return cls(reports, **{k: d.get(k, {}) for k in ("seconds", "val_loss", "val_focus", "steps", "lr", "epochs",
                                                          "tries")})


@dataclass
class ModelFocusReport:
    model: str
    recipe: FitRecipe
    runs: dict[int, SeedRun]

    def accuracy(self, method: str, split: str, focus_type: str) -> list[float]:
        """Per seed (where it was measured)."""
        return [r.reports[method].accuracy[split][focus_type] for r in self.runs.values()
                if method in r.reports and split in r.reports[method].accuracy
                and focus_type in r.reports[method].accuracy[split]]

    def targets(self) -> list[dict]:
        """Each target of ``TARGETS`` with its per-seed values and whether every seed meets it."""
        out = []
        for method, split, t, op, bound in TARGETS:
            if method not in self.recipe.methods or split not in self.recipe.splits:
                continue
            values = self.accuracy(method, split, t)
            ok = [v >= bound if op == ">=" else v <= bound for v in values]
            out.append(dict(method=method, split=split, focus_type=t, op=op, bound=bound, values=values,
                            met=sum(ok), of=len(ok)))
        return out

    def table(self) -> str:
        """Mean (min-max over seeds) per focus type and split for each method, the per-seed numbers of the
        flipped split, and the targets."""
        methods, splits = self.recipe.methods, self.recipe.splits
        lines = [f"{self.model}: {' and '.join(methods)} (LoRA) on {self.recipe.examples} travel reviews "
                 f"({self.recipe.agree:.0%} city-label agreement), seeds {', '.join(map(str, self.runs))}; focus "
                 f"accuracy on {self.recipe.test} test reviews per split, mean (min-max) over seeds", ""]
        cols = [(m, s) for s in splits for m in methods]
        lines += ["| focus type | " + " | ".join(f"{m} {s}" for m, s in cols) + " |", "|---" * (1 + len(cols)) + "|"]
        for t in focus.FOCUS_TYPES:
            cells = []
            for m, s in cols:
                v = self.accuracy(m, s, t)
                cells.append(f"{statistics.mean(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "-")
            lines.append(f"| {focus.templates.PRETTY[t]} | " + " | ".join(cells) + " |")
        per_seed = [(m, t) for m in methods for t in ("focus_c", "focus_s")]
        # the rates' column is as wide as its longest entry (a retry reads "0.001/3>0.0003/6*"), left-aligned
        # after two spaces, so a long one never runs into the seconds before it
        rate_width = max([len(f"{m} lr/ep") for m in methods] + [len(_rates(r, m)) for r in self.runs.values()
                                                                  for m in methods])
        lines += ["", "per seed, flipped split (C: focus(C), S: focus(S); all: mean over the seven types), training "
                      "seconds (every try) and the learning rate/epochs (where several were tried, each in order, the "
                      "kept one starred):", f"{'seed':>6}" + "".join(f"{m + ' ' + t[-1].upper():>8}" for m, t in per_seed)
                  + "".join(f"{m + ' all':>9}" for m in methods) + "".join(f"{m + ' s':>8}" for m in methods)
                  + "".join(f"  {m + ' lr/ep':<{rate_width}}" for m in methods).rstrip()]
        for seed, r in self.runs.items():
            flipped = {m: r.reports[m].accuracy["flipped"] for m in methods}
            lines.append(f"{seed:>6}" + "".join(f"{flipped[m][t]:>8.2f}" for m, t in per_seed)
                         + "".join(f"{r.reports[m].mean('flipped'):>9.2f}" for m in methods)
                         + "".join(f"{r.seconds[m]:>8.0f}" for m in methods)
                         + "".join(f"  {_rates(r, m):<{rate_width}}" for m in methods).rstrip())
        lines += ["", "targets (issue 28), per seed:"]
        for g in self.targets():
            lines.append(f"  {g['method']} {g['split']} {focus.templates.PRETTY[g['focus_type']]} {g['op']} "
                         f"{g['bound']}: met on {g['met']} of {g['of']} seeds "
                         f"({', '.join(f'{v:.2f}' for v in g['values'])})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dict(model=self.model, recipe=asdict(self.recipe), targets=self.targets(),
                    runs={seed: dict(reports={m: rep.to_dict() for m, rep in r.reports.items()}, seconds=r.seconds,
                                     val_loss=r.val_loss, val_focus=r.val_focus, steps=r.steps, lr=r.lr,
                                     epochs=r.epochs, tries=r.tries)
                          for seed, r in self.runs.items()})

    @classmethod
    def from_dict(cls, d: dict) -> "ModelFocusReport":
        return cls(d["model"], FitRecipe.from_dict(d["recipe"]),
                   {int(seed): SeedRun.from_dict(r) for seed, r in d["runs"].items()})

    @classmethod
    def merge(cls, folders) -> "ModelFocusReport":
        """One report from the fit.json of earlier runs (each of one seed or several), as if they had run
        in one call: the same model and recipe, no seed twice. Refused in one line otherwise."""
        parts = []
        for folder in folders:
            path = Path(folder) / "fit.json" if Path(folder).is_dir() else Path(folder)
            if not path.is_file():
                raise ValueError(f"--merge: {folder} holds no fit.json (a folder written by --out)")
            try:
                parts.append((path, cls.from_dict(json.loads(path.read_text()))))
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"--merge: {path} is not a fit.json this version reads ({err})") from None
        if not parts:
            raise ValueError("--merge: expected at least one folder")
        first_path, first = parts[0]
        runs = {}
        for path, part in parts:
            if part.model != first.model or part.recipe != first.recipe:
                raise ValueError(f"--merge: {path} ran {part.model} with another recipe or model than {first_path} "
                                 f"({first.model}); only runs of one model and recipe make one table")
            twice = sorted(set(part.runs) & set(runs))
            if twice:
                raise ValueError(f"--merge: seed(s) {', '.join(map(str, twice))} of {path} already came from another "
                                 "folder")
            runs.update(part.runs)
        return cls(first.model, first.recipe, dict(sorted(runs.items())))

    def save(self, out: str | Path) -> dict[str, Path]:
        """fit_<name>.json, .md and the radar plot (when matplotlib imports) in ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "fit.json", "md": out / "fit.md"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1))
        paths["md"].write_text(self.table() + "\n")
        try:
            paths["plot"] = self.radar(out / "fit_radar.png")
        except ImportError:
            pass
        return paths

    def radar(self, path: str | Path) -> Path:
        """Focus accuracy per type on the flipped split (mean over seeds), FIT against SFT, as a radar plot."""
        series = {m: {t: statistics.mean(self.accuracy(m, "flipped", t)) for t in focus.FOCUS_TYPES}
                  for m in self.recipe.methods}
        return focus.evaluation.radar(series, path, title=f"{self.model}: focus accuracy on the flipped split, "
                                                          f"mean over {len(self.runs)} seed(s)")


def _rates(run_: SeedRun, method: str) -> str:
    """The learning rate kept and its epochs ('lr/epochs'); where several were tried, each in order, the
    kept one starred ('-' for a run recorded without it)."""
    kept = run_.lr.get(method), run_.epochs.get(method)
    if kept[0] is None:
        return "-"
    tried = [(t["lr"], t["epochs"]) for t in run_.tries.get(method, [])] or [kept]
    return ">".join(f"{lr:g}/{ep:g}" + "*" * ((lr, ep) == kept and len(tried) > 1) for lr, ep in tried)


def run(model: str = "smollm2", seeds=(0, 1, 2), recipe: FitRecipe = FitRecipe(), log=print,
        progress: bool = False) -> ModelFocusReport:
    """Each method of the recipe per seed, from one loaded base (each run's LoRA is unloaded after it)."""
    from dataclasses import replace

    from ..hf import load_model

    # the report records whether the validation held flipped copies, so --merge never joins a run from
    # before they were the default (its recipe reads None) with one trained with them
    recipe = replace(recipe, val_flipped=recipe.config(0, False).val_flipped)
    base, tok = load_model(model, dtype=recipe.dtype)
    runs = {}
    for seed in seeds:
        data = reviews.splits(train=recipe.examples, test=recipe.test, agree=recipe.agree, seed=seed)
        tests = {}
        for split in recipe.splits:
            types = focus.CORE_FAMILY if focus.core_family_only(data[split], reviews.TASK) else focus.FOCUS_TYPES
            tests[split] = focus.build_focus_dataset(data[split], reviews.TASK, focus_types=types, per_example="all",
                                                     tokenizer=tok, seed=seed)
        run_ = SeedRun({})
        for method in recipe.methods:
            # SFT: the same examples and LoRA, the task prompt alone
            draw = (dict(focus_types=focus.FOCUS_TYPES, per_example=recipe.per_example,
                         per_disagreeing=recipe.per_disagreeing) if method == "FIT"
                    else dict(focus_types=("none",), per_example=1))
            records = focus.build_focus_dataset(data["train"], reviews.TASK, tokenizer=tok, seed=seed, **draw)
            log(f"seed {seed}, {method}: {len(records)} prompts")
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=focus.FocusTrainingWarning)  # logged below, per run
                result = focus.train(base, tok, records, lora=recipe.lora(), config=recipe.config(seed, progress),
                                     task=reviews.TASK)
            for problem in result.problems:
                log(f"seed {seed}, {method}: warning: {problem}")
            run_.seconds[method], run_.val_loss[method] = time.perf_counter() - t0, result.best_val_loss
            run_.steps[method], run_.tries[method] = result.steps, result.tries
            run_.lr[method], run_.epochs[method] = result.lr, result.epochs
            if result.val_focus is not None:
                run_.val_focus[method] = result.val_focus.metrics()
            run_.reports[method] = focus.evaluate(result.model, tok, tests, batch_size=32)
            log(f"seed {seed}, {method}: trained in {run_.seconds[method]:.0f} s at lr {_rates(run_, method)}; flipped "
                + ", ".join(f"{focus.templates.PRETTY[t]} {a:.2f}"
                            for t, a in run_.reports[method].accuracy.get("flipped", {}).items()))
            base = result.model.unload()  # the base again, without the adapter
        runs[seed] = run_
    return ModelFocusReport(str(model), recipe, runs)
