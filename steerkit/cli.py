"""The ``steerkit`` command."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steerkit", description="Fused kernels for steering and focus tuning")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="print versions and which backends are built (and why one is missing)")
    p_info.add_argument("--json", action="store_true", help="print the facts as JSON")
    p_info.add_argument("--model", default=None, help="with --vectors: a local HF checkpoint to report steering paths for")
    p_info.add_argument("--vectors", default=None, help="with --model: which path (fused, folded, hook) each "
                        "(site, layer) of this vector file takes on that model, and why")
    p_gen = sub.add_parser("generate", help="print steered next to unsteered continuations of a local model")
    p_gen.add_argument("--model", required=True, help="folder of a local Hugging Face checkpoint (no downloads)")
    p_gen.add_argument("--vectors", required=True, help="a steerkit .safetensors vector file")
    p_gen.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    p_gen.add_argument("--strength", type=float, nargs="+", default=[1.0],
                       help="one value for all attributes, or one per attribute")
    p_gen.add_argument("--tokens", default="all", help="all | prompt | generated | a start position")
    p_gen.add_argument("--max-new-tokens", type=int, default=40)
    p_gen.add_argument("--device", default=None, help="e.g. cuda; default: where the model loads")
    p_demo = sub.add_parser("demo", help="the MAT-Steer pipeline end to end on an embedded toy (or your model + data)")
    p_demo.add_argument("--model", default=None, help="a local HF checkpoint folder instead of the toy (with --data)")
    p_demo.add_argument("--data", default=None, help="JSONL of {text, attribute, label} (with --model)")
    _site_args(p_demo, required=False)
    p_demo.add_argument("--quick", action="store_true", help="a shorter MAT-Steer training (what the tests run)")
    p_demo.add_argument("--prompts", type=int, default=64, help="held-out prompts to generate from")
    p_demo.add_argument("--max-new-tokens", type=int, default=16)
    p_demo.add_argument("--strength", type=float, default=1.0, help="strength of the attribute steered toward")
    p_demo.add_argument("--retrain", action="store_true", help="retrain the toy model even if it is cached")
    _mat_args(p_demo, defaults=False)
    p_demo.add_argument("--save-vectors", default=None, help="also write the learned vectors here")

    p_mat = sub.add_parser("train-mat", help="learn MAT-Steer vectors for a local model from a JSONL data set")
    p_mat.add_argument("--model", required=True, help="folder of a local Hugging Face checkpoint (no downloads)")
    p_mat.add_argument("--data", required=True, help="JSONL, one {text, attribute, label: positive|negative} per line")
    _site_args(p_mat, required=True)
    p_mat.add_argument("-o", "--output", required=True, help="where to write the .safetensors vectors")
    p_mat.add_argument("--tokens", choices=["all", "last"], default="all", help="which tokens' activations to learn from")
    p_mat.add_argument("--batch-size", type=int, default=16, help="texts per forward pass when collecting")
    p_mat.add_argument("--cache", default=None, help="folder to cache activations in (reused when nothing changed)")
    p_mat.add_argument("--device", default=None, help="e.g. cuda; default: CUDA when available")
    _mat_args(p_mat, defaults=True)
    p_demo.add_argument("--focus", action="store_true",
                        help="the FIT demo instead: focus-tune the focus toy with LoRA, next to plain SFT")
    p_demo.add_argument("--base-seed", type=int, nargs="+", default=None, metavar="S",
                        help="with --focus: pretrain the toy's base from these seeds (default: 3); with several, "
                             "one summary row per base and the rates over them")
    _fit_parsers(sub)
    args = parser.parse_args(argv)
    if args.command == "demo" and args.focus:
        return _demo_focus(args)
    if args.command == "demo" and args.base_seed is not None:
        print("steerkit demo: --base-seed goes with --focus (the MAT-Steer demo's toy has no such choice)",
              file=sys.stderr)
        return 2
    if args.command == "fit":
        return _fit(args)
    if args.command == "eval-focus":
        return _eval_focus(args)
    if args.command == "generate":
        return _generate(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "train-mat":
        return _train_mat(args)
    if args.command == "info":
        from .info import info

        if (args.model is None) != (args.vectors is None):
            print("steerkit info: --model and --vectors go together", file=sys.stderr)
            return 2
        facts = info(print_it=not args.json)
        if args.model is not None:
            try:
                facts["paths"] = _paths(args.model, args.vectors)
            except (FileNotFoundError, ValueError) as err:
                print(f"steerkit info: {err}", file=sys.stderr)
                return 2
            if not args.json:
                print(f"steering paths on {args.model}:")
                for row in facts["paths"]:
                    print(f"  {row['site']:<10} layer {row['layer']:<3} {row['path']:<6}  {row['why']}")
        if args.json:
            print(json.dumps(facts, indent=1, default=str))
        return 0
    return 2


def _site_args(p, required: bool) -> None:
    from .vectors import SITES

    p.add_argument("--site", choices=SITES, required=required, default=None,
                   help="where the vectors are learned and applied" + ("" if required else " (toy: block_out)"))
    p.add_argument("--layer", type=int, required=required, default=None,
                   help="0-based decoder layer" + ("" if required else " (toy: 1)"))


def _mat_args(p, defaults: bool) -> None:
    """MAT-Steer options; with defaults=False an unset option keeps the caller's own default."""
    d = (lambda v: v) if defaults else (lambda v: None)  # noqa: E731
    p.add_argument("--recipe", choices=["scaled", "paper"], default=d("scaled"),
                   help="scaled: data-derived sigma and warm starts (default); paper: the paper's recipe as written")
    p.add_argument("--variant", choices=["paper", "released"], default=d("paper"), help="form of the loss")
    p.add_argument("--epochs", type=int, default=d(100))
    p.add_argument("--lr", type=float, default=d(1e-3))
    p.add_argument("--sigma", type=float, default=None, help="MMD kernel width (default: from the recipe)")
    p.add_argument("--no-norm-preserve", action="store_true", help="do not rescale edited activations to their norm")
    p.add_argument("--seed", type=int, default=0)


def _mat_config(args, base):
    from dataclasses import replace

    changes = {k: getattr(args, k) for k in ("recipe", "variant", "epochs", "lr", "sigma", "seed")
               if getattr(args, k, None) is not None}
    if getattr(args, "device", None):
        changes["device"] = args.device
    if args.no_norm_preserve:
        changes["norm_preserve"] = False
    cfg = replace(base, **changes)
    cfg.check()
    return cfg


def _demo(args) -> int:
    from . import demo, mat

    try:
        explicit = any(getattr(args, k) is not None for k in ("recipe", "variant", "epochs", "lr", "sigma")) \
            or args.no_norm_preserve
        config = _mat_config(args, mat.MATConfig(seed=args.seed)) if explicit else None
        report = demo.run(model_path=args.model, data=args.data, site=args.site, layer=args.layer, quick=args.quick,
                          prompts=args.prompts, max_new_tokens=args.max_new_tokens, config=config,
                          strength=args.strength, seed=args.seed, retrain=args.retrain)
    except (FileNotFoundError, ValueError) as err:
        print(f"steerkit demo: {err}", file=sys.stderr)
        return 2
    print()
    print(f"MAT-Steer at {report.site} layer {report.layer}; greedy continuations of {len(report.samples['unsteered'])} "
          "held-out prompts, unsteered and steered toward each attribute")
    print(report.table())
    print("\nsamples (first prompt):")
    for run, texts in report.samples.items():
        print(f"  {run:20} {texts[0]}")
    if args.save_vectors:
        report.vectors.save(args.save_vectors)
        print(f"\nvectors written to {args.save_vectors}")
    return 0


def _fit_parsers(sub) -> None:
    from .focus import templates
    from .focus.train import FocusTrainConfig, LoraSettings

    c, lo = FocusTrainConfig(), LoraSettings()
    p = sub.add_parser("fit", help="focus-tune a local model with LoRA (Focus Instruction Tuning)")
    p.add_argument("--model", required=True, help="folder of a local Hugging Face checkpoint (no downloads)")
    p.add_argument("--task", required=True, help="JSON: instruction, labels, core, spurious, spurious_labels, describe")
    p.add_argument("--data", required=True, help="JSONL of {input, label, features: {name: value}}")
    p.add_argument("--val", default=None, help="validation examples (JSONL); default: hold out --val-fraction")
    p.add_argument("-o", "--output", required=True, help="folder for the PEFT adapter, tokenizer and log")
    p.add_argument("--types", nargs="+", choices=templates.FOCUS_TYPES, default=list(templates.FOCUS_TYPES),
                   help="focus types to train on (default: all; 'none' alone is plain SFT)")
    p.add_argument("--per-example", type=int, default=1, help="focus types drawn per example")
    p.add_argument("--save-records", default=None, help="also write the built focus prompts here (JSONL)")
    p.add_argument("--epochs", type=float, default=c.epochs)
    p.add_argument("--lr", type=float, default=c.lr)
    p.add_argument("--batch-size", type=int, default=c.batch_size)
    p.add_argument("--grad-accum", type=int, default=c.grad_accum)
    p.add_argument("--max-length", type=int, default=c.max_length)
    p.add_argument("--val-fraction", type=float, default=c.val_fraction)
    p.add_argument("--eval-every", type=int, default=None, help="steps between validations (default: each epoch)")
    p.add_argument("--patience", type=int, default=c.patience, help="validations without improvement; 0: never stop")
    p.add_argument("--r", type=int, default=lo.r, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=lo.alpha, help="LoRA alpha")
    p.add_argument("--dropout", type=float, default=lo.dropout, help="LoRA dropout")
    p.add_argument("--target-modules", nargs="+", default=None, help="modules to adapt (default: all linear layers)")
    p.add_argument("--seed", type=int, default=c.seed)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval-focus", help="focus accuracy of a model (and adapter) per focus type and test split")
    e.add_argument("--model", required=True, help="folder of a local Hugging Face checkpoint (the base model)")
    e.add_argument("--adapter", default=None, help="a PEFT adapter folder (as written by steerkit fit)")
    e.add_argument("--task", required=True, help="the task JSON used for training")
    e.add_argument("--test", action="append", required=True, metavar="NAME=PATH",
                   help="a test split of examples (JSONL), e.g. flipped=flipped.jsonl; repeat for several")
    e.add_argument("--unseen", default=None, metavar="PATH",
                   help="examples to score with held-out instruction wordings (split 'unseen')")
    e.add_argument("--types", nargs="+", choices=templates.FOCUS_TYPES, default=list(templates.FOCUS_TYPES))
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--max-length", type=int, default=None)
    e.add_argument("--json", default=None, help="write accuracies and predictions here")
    e.add_argument("--plot", default=None, help="write a bar plot (PNG) here; needs matplotlib")
    e.add_argument("--device", default=None, help="e.g. cuda; default: where the model loads")


def _fit(args) -> int:
    from . import focus
    from .hf import load_local

    try:
        task = focus.FocusTask.load(args.task)
        model, tok = load_local(args.model)
        build = dict(focus_types=args.types, per_example=min(args.per_example, len(args.types)), tokenizer=tok,
                     seed=args.seed)
        records = focus.build_focus_dataset(args.data, task, **build)
        val = focus.build_focus_dataset(args.val, task, **build) if args.val else None
        if args.save_records:
            focus.save_jsonl(records, args.save_records)
        lora = focus.LoraSettings(r=args.r, alpha=args.alpha, dropout=args.dropout,
                                  target_modules=tuple(args.target_modules) if args.target_modules else "all-linear")
        config = focus.FocusTrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                        grad_accum=args.grad_accum, max_length=args.max_length,
                                        val_fraction=args.val_fraction, eval_every=args.eval_every,
                                        patience=args.patience or None, seed=args.seed, progress=not args.quiet)
        result = focus.train(model, tok, records, val=val, lora=lora, config=config, output_dir=args.output)
    except (FileNotFoundError, ValueError) as err:
        print(f"steerkit fit: {err}", file=sys.stderr)
        return 2
    (Path(args.output) / "focus_task.json").write_text(json.dumps(task.to_dict(), indent=1))
    print(f"trained {result.steps} steps in {result.seconds:.0f} s; best validation loss {result.best_val_loss:.4f}")
    print(f"adapter written to {args.output} (load it with peft.PeftModel.from_pretrained)")
    return 0


def _eval_focus(args) -> int:
    from . import focus
    from .hf import load_local

    try:
        task = focus.FocusTask.load(args.task)
        model, tok = load_local(args.model, device=args.device)
        if args.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, args.adapter).eval()
        sets = {}
        for spec in args.test:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--test: expected NAME=PATH, got {spec!r}")
            sets[name] = focus.build_focus_dataset(path, task, focus_types=args.types, per_example="all", tokenizer=tok)
        if args.unseen:
            sets["unseen"] = focus.build_focus_dataset(args.unseen, task, focus_types=args.types, per_example="all",
                                                       held_out_wordings=True, tokenizer=tok)
        report = focus.evaluate(model, tok, sets, batch_size=args.batch_size, max_length=args.max_length,
                                progress=True)
    except (FileNotFoundError, ValueError) as err:
        print(f"steerkit eval-focus: {err}", file=sys.stderr)
        return 2
    print(report.table())
    if args.json:
        print(f"written to {report.save_json(args.json)}")
    if args.plot:
        print(f"plot written to {report.plot(args.plot)}")
    return 0


def _demo_focus(args) -> int:
    from . import demo_focus

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


def _train_mat(args) -> int:
    from . import mat
    from .hf import load_local

    try:
        config = _mat_config(args, mat.MATConfig())
        model, tok = load_local(args.model)
        if args.device:
            model = model.to(args.device)
        acts = mat.collect_activations(model, tok, args.data, site=args.site, layer=args.layer, tokens=args.tokens,
                                       batch_size=args.batch_size, cache_dir=args.cache)
        print(acts)
        vecs = mat.train(acts, config)
    except (FileNotFoundError, ValueError) as err:
        print(f"steerkit train-mat: {err}", file=sys.stderr)
        return 2
    vecs.save(args.output)
    for a, r in mat.gate_report(vecs, acts).items():
        print(f"{a}: mean gate {r['gate_neg']:.3f} on negatives, {r['gate_pos']:.3f} on positives, AUC {r['auc']:.3f}")
    print(f"wrote {vecs} to {args.output}")
    return 0


def _paths(model_dir: str, vectors_path: str) -> list[dict]:
    """Which path each (site, layer) of a vector file takes when it patches this model."""
    from .hf import load_local
    from .patch import patch
    from .vectors import SteeringVectors

    model, _ = load_local(model_dir)
    with patch(model, SteeringVectors.load(vectors_path)) as handle:
        return [dict(site=site, layer=layer, path=path, why=why)
                for (site, layer), (path, why) in sorted(handle.paths.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _generate(args) -> int:
    import torch

    from .generate import compare
    from .hf import load_local
    from .vectors import SteeringVectors

    try:
        model, tok = load_local(args.model, device=args.device)
        vecs = SteeringVectors.load(args.vectors)
        tokens = int(args.tokens) if args.tokens.isdigit() else args.tokens
        strength = args.strength[0] if len(args.strength) == 1 else torch.tensor(args.strength)
        rows = compare(model, tok, vecs, args.prompt, strength=strength, tokens=tokens,
                       max_new_tokens=args.max_new_tokens)
    except (FileNotFoundError, ValueError) as err:
        print(f"steerkit generate: {err}", file=sys.stderr)
        return 2
    print(f"vectors: {vecs}")
    for prompt, plain, steered in rows:
        print(f"\nprompt:     {prompt}\nunsteered:  {plain}\nsteered:    {steered}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
