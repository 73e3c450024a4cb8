"""``steerkit demo --focus``: the FIT reproduction on the embedded focus toy. A tiny Llama, pretrained
as a reader that answers questions about a review's tone or box colour in its own words, is
focus-tuned with LoRA on training data whose spurious feature (the box colour) agrees with the label
90% of the time, each example under every focus type, next to plain SFT on the same examples without
focus instructions; both are scored on splits where that agreement is the same, higher, lower or
flipped, and on unseen wordings."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from .. import focus
from .toy import focus_corpus
from .toy.model import ToySettings, toy_model

SOURCE = focus_corpus.CORPUS
# 1000 steps, untied head (issue 17, quick runs on bases 0-4, transformers 5.24): tied to the input
# embedding, 1 base in 5 stayed on its plateau at 1000 steps and never read the tone, and FIT reached 0.9
# under focus(C) and focus(S) on 3 of the other 4; pretrained 1500 steps, all five read but FIT reached it
# on none. Untied, all five read both features; with LoRA on the head too (LORA), FIT reaches it on all five
# at transformers 5.24 and 4.51 (README)
BASE = ToySettings(max_positions=128, texts=20000, steps=1000, seed=3, tied_embeddings=False)
# the head too: the base has never produced the labels "positive"/"negative" (focus.LoraSettings.head)
LORA = focus.LoraSettings(r=16, alpha=32, head=True)
SPLITS = {"same": 0.9, "higher": 1.0, "lower": 0.5, "flipped": 0.0}
TRAIN_AGREE = 0.9


@dataclass
class FocusDemoReport:
    fit: focus.FocusReport
    sft: focus.FocusReport
    seconds: dict = field(default_factory=dict)
    base: dict = field(default_factory=dict)  # what the base reads before tuning: {"tone": acc, "colour": acc}
    # the best validation loss (nats per label token) of each run: near 0 when the labels were learned as
    # words, not only ranked above each other (issue 17: 3.4 with the head left frozen)
    val_loss: dict = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"base before tuning, asked as in its pretraining: reads the tone {self.base['tone']:.3f}, "
                 f"the box colour {self.base['colour']:.3f}", "",
                 self.fit.table("FIT (LoRA)"), "", self.sft.table("SFT, no focus"),
                 "", "flipped split (the colour always points to the other label), focus accuracy:",
                 f"{'':<16}{'focus(C)':>10}{'focus(S)':>10}{'all types':>11}"]
        for name, report in (("FIT (LoRA)", self.fit), ("SFT, no focus", self.sft)):
            f = report.accuracy["flipped"]
            lines.append(f"  {name:<14}{f['focus_c']:>10.3f}{f['focus_s']:>10.3f}{report.mean('flipped'):>11.3f}")
        lines.append("  train time: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()))
        if self.val_loss:
            lines.append("  best validation loss: " + ", ".join(f"{k} {v:.4f}" for k, v in self.val_loss.items()))
        return "\n".join(lines)

    def flipped(self) -> dict[str, float]:
        """The numbers the paper's effect is judged by, on the flipped split."""
        fit, sft = self.fit.accuracy["flipped"], self.sft.accuracy["flipped"]
        return {"fit_focus_c": fit["focus_c"], "fit_focus_s": fit["focus_s"], "fit_all": self.fit.mean("flipped"),
                "sft_none": sft["none"], "sft_focus_s": sft["focus_s"], "sft_all": self.sft.mean("flipped")}


def test_sets(n: int, seed: int = 20) -> dict:
    """Every focus type for n examples per split; ``unseen`` uses only held-out wordings."""
    sets = {name: focus.build_focus_dataset(focus_corpus.examples(n, rate, seed + k), focus_corpus.TASK,
                                            per_example="all", seed=seed)
            for k, (name, rate) in enumerate(SPLITS.items())}
    sets["unseen"] = focus.build_focus_dataset(focus_corpus.examples(n, TRAIN_AGREE, seed + 10), focus_corpus.TASK,
                                               per_example="all", held_out_wordings=True, seed=seed)
    return sets


def base_reading(model, tok, n: int = 200) -> dict[str, float]:
    """The base's accuracy at answering the tone and the box colour of fresh reviews: a base that has
    not learned to read one of them makes the FIT table meaningless, so the demo reports it first."""
    records = focus_corpus.reader_questions(n)
    right = [p == r.target for p, r in zip(focus.predict(model, tok, records, batch_size=64), records)]
    core = [ok for ok, r in zip(right, records) if r.focus_type in focus.CORE_FAMILY]
    colour = [ok for ok, r in zip(right, records) if r.focus_type not in focus.CORE_FAMILY]
    return {"tone": sum(core) / len(core), "colour": sum(colour) / len(colour)}


def run(quick: bool = False, examples: int | None = None, epochs: float | None = None, lr: float = 2e-3,
        seed: int = 0, retrain: bool = False, log=print, progress: bool = True,
        base_seed: int | None = None) -> FocusDemoReport:
    """FIT puts each training example under all seven focus types. The paper samples one per example;
    with one, over the quick run's 300 examples for as many prompt passes (84 epochs), FIT reached 0.9
    under focus(C) and focus(S) on 1 of bases 0-4 (README). ``quick`` trains on 300 examples for 12
    epochs instead of 600 for 6 and scores 60 per split instead of 200. ``base_seed`` pretrains (or
    loads) the base from another seed than ``BASE.seed``."""
    n = examples or (300 if quick else 600)
    # quick: half the examples for twice the epochs, the full run's number of steps (with the head frozen,
    # 6 epochs on 300 left focus(S) at 0.70-0.83 on the tied bases; issue 17)
    epochs = epochs or (12.0 if quick else 6.0)
    settings = BASE if base_seed is None else replace(BASE, seed=base_seed)
    base, tok, path = toy_model(settings, retrain=retrain, log=log, source=SOURCE)
    reads = base_reading(base, tok, 60 if quick else 200)
    log(f"base reads the tone {reads['tone']:.3f}, the box colour {reads['colour']:.3f}")
    if min(reads.values()) < 0.9:
        log("warning: the base has not learned to read both features, so the tables below say little about "
            "FIT; --base-seed (or BASE.steps in steerkit/demos/focus_toy.py) sets its pretraining")
    train_examples = focus_corpus.examples(n, TRAIN_AGREE, seed + 1)
    tests = test_sets(60 if quick else 200)
    # retry_lrs=() and the plain validation split: the toy's recipe is its own rate and epochs (measured over
    # bases, README), not the real models' retry at 3e-4 and the stratified split that decides it
    cfg = focus.FocusTrainConfig(epochs=epochs, lr=lr, batch_size=16, max_length=None, patience=None, seed=seed,
                                 retry_lrs=(), val_disagreeing=0, progress=progress)
    reports, seconds, val_loss = {}, {}, {}
    for mode, types in (("FIT", focus.FOCUS_TYPES), ("SFT", ("none",))):
        model, _, _ = toy_model(settings, log=lambda *a: None, source=SOURCE)
        records = focus.build_focus_dataset(train_examples, focus_corpus.TASK, focus_types=types,
                                            per_example="all", seed=seed)
        kinds = ", ".join(focus.templates.PRETTY[t] for t in types)
        log(f"{mode}: LoRA r={LORA.r} (all linear layers and the head) on {len(records)} prompts ({kinds}), "
            f"{epochs:g} epochs")
        t0 = time.perf_counter()
        result = focus.train(model, tok, records, lora=LORA, config=cfg)
        seconds[mode], val_loss[mode] = time.perf_counter() - t0, result.best_val_loss
        reports[mode] = focus.evaluate(result.model, tok, tests, batch_size=64)
    return FocusDemoReport(reports["FIT"], reports["SFT"], seconds, reads, val_loss)


def run_bases(base_seeds, log=print, **options) -> dict[int, FocusDemoReport]:
    """The demo once per base seed: on this toy both FIT's and SFT's results depend on the base (issue 5),
    so one base's table is an anecdote and the rates over several are the result."""
    reports = {}
    for b in base_seeds:
        log(f"base seed {b}:")
        reports[b] = run(base_seed=b, log=log, **options)
    return reports


def bases_table(reports: dict[int, FocusDemoReport]) -> str:
    """One row per base: what it reads before tuning, then the flipped-split numbers of ``flipped``."""
    head = ("base", "tone", "colour", "FIT C", "FIT S", "FIT all", "SFT none", "SFT S", "SFT all")
    lines = ["flipped split, per base seed (tone/colour: what the base reads before tuning; C/S: focus(C)/focus(S);",
             "all: mean over the seven focus types)", "".join(f"{h:>9}" for h in head)]
    for b, r in reports.items():
        cells = [r.base["tone"], r.base["colour"], *r.flipped().values()]
        lines.append(f"{b:>9}" + "".join(f"{c:>9.3f}" for c in cells))
    reading = [r.flipped() for r in reports.values() if min(r.base.values()) >= 0.9]
    fit_ok = [min(f["fit_focus_c"], f["fit_focus_s"]) >= 0.9 for f in reading]
    shortcut = [f["sft_none"] < 0.9 for f in reading]
    lines.append(f"of {len(reading)} bases that read both features (of {len(reports)}): FIT >= 0.9 under focus(C) "
                 f"and focus(S) on {sum(fit_ok)}; SFT below 0.9 with no instruction (the colour taken) on "
                 f"{sum(shortcut)}; both at once on {sum(a and b for a, b in zip(fit_ok, shortcut))}")
    return "\n".join(lines)
