"""How FIT learns on a real model, evaluation by evaluation (issue 38: why the second family fails).

It trains FIT as ``steerkit demo --focus --model M`` does (``steerkit fit``'s draw of focus types on the
seed's 240 travel reviews at 90% city-label agreement), with the epochs and learning rate given here,
and validates on the **flipped split of a development draw** (data seed 1000 + seed: reviews never
in the seed's training or test splits, where the city always points to the other label), so every
evaluation records the validation loss and the focus accuracy of each type where the two features
disagree. The test splits are not touched.

    python benches/fit_curve.py --model gemma3-270m --epochs 6 -o benches/results/cpu/fit_gemma3_270m/curve_seed0.json

Prints one line per evaluation: the step, the epoch, the validation loss and the accuracy per focus type
(``--table RUN.json ...`` prints and writes the tables of finished runs again).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from steerkit.focus.templates import FOCUS_TYPES as TYPES  # noqa: E402 (no torch: --table stays light)


def table(run: dict) -> str:
    """The curve as text: one row per evaluation (the base model's zero-shot row first)."""
    lines = [f"{run['model']}, seed {run['seed']}: FIT on {run['prompts']} prompts, {run['epochs']:g} epochs at lr "
             f"{run['lr']:g}, trained {run['steps']} steps in {run['seconds']:.0f} s; validation: "
             f"{run['dev_reviews']} flipped development reviews under every focus type; labels {run['labels']}",
             f"{'step':>5} {'epoch':>6} {'val loss':>9} " + " ".join(f"{t:>16}" for t in TYPES),
             f"{'base':>5} {0:>6.2f} {'':>9} " + " ".join(f"{run['base']['accuracy_' + t]:>16.3f}" for t in TYPES)]
    for h in run["curve"]:
        lines.append(f"{h['step']:>5} {h['epoch']:>6.2f} {h['loss']:>9.4f} "
                     + " ".join(f"{h['accuracy_' + t]:>16.3f}" for t in TYPES))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="gemma3-270m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=6.0)
    p.add_argument("--lr", type=float, default=None, help="default: steerkit fit's")
    p.add_argument("--evals-per-epoch", type=int, default=2)
    p.add_argument("--dev", type=int, default=16, help="flipped development reviews (each under all seven types)")
    p.add_argument("-o", "--out", help="JSON file for the curve (and the table beside it, .md)")
    p.add_argument("--table", nargs="+", metavar="JSON", help="print (and write beside them) the tables of runs")
    args = p.parse_args(argv)
    if args.table:
        for f in args.table:
            text = table(json.loads(Path(f).read_text()))
            Path(f).with_suffix(".md").write_text(text + "\n")
            print(text + "\n")
        return 0
    if not args.out:
        p.error("-o/--out is required (or --table)")
    from steerkit.outputs import check_output_file

    check_output_file(args.out, "--out")
    from steerkit import focus
    from steerkit.focus import reviews
    from steerkit.focus.config import PER_DISAGREEING, PER_EXAMPLE
    from steerkit.hf import load_model
    from steerkit.steerbench.run import _versions as versions

    base, tok = load_model(args.model)
    train = reviews.splits(train=240, test=1, agree=0.9, seed=args.seed)["train"]
    dev = reviews.splits(train=1, test=args.dev, agree=0.9, seed=1000 + args.seed)["flipped"]
    records = focus.build_focus_dataset(train, reviews.TASK, tokenizer=tok, seed=args.seed,
                                        per_example=PER_EXAMPLE, per_disagreeing=PER_DISAGREEING)
    val = focus.build_focus_dataset(dev, reviews.TASK, per_example="all", tokenizer=tok, seed=args.seed)
    d = focus.FocusTrainConfig()
    steps_per_epoch = len(records) // d.batch_size
    cfg = focus.FocusTrainConfig(epochs=args.epochs, lr=args.lr or d.lr, seed=args.seed, progress=False,
                                 patience=None, eval_every=max(1, steps_per_epoch // args.evals_per_epoch),
                                 retry_lrs=())  # one curve per rate
    from steerkit.focus.validation import measure

    before = measure(base, tok, val).metrics()  # the base model, zero-shot, on the same prompts
    labels = {y: tok(" " + y, add_special_tokens=False)["input_ids"] for y in reviews.TASK.labels}
    t0 = time.perf_counter()
    result = focus.train(base, tok, records, val=val, config=cfg)
    seconds = time.perf_counter() - t0
    out = dict(model=args.model, seed=args.seed, epochs=args.epochs, lr=cfg.lr, prompts=len(records),
               dev_reviews=args.dev, labels=labels, base=before, seconds=seconds, steps=result.steps, curve=result.val_focus_history,
               versions=versions())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    Path(args.out).with_suffix(".md").write_text(table(out) + "\n")
    print(table(out))
    print(f"curve written to {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
