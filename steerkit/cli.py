"""The ``steerkit`` command."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steerkit", description="Fused kernels for steering and focus tuning")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="print versions and which backends are built (and why one is missing)")
    p_info.add_argument("--json", action="store_true", help="print the facts as JSON")
    p_gen = sub.add_parser("generate", help="print steered next to unsteered continuations of a local model")
    p_gen.add_argument("--model", required=True, help="folder of a local Hugging Face checkpoint (no downloads)")
    p_gen.add_argument("--vectors", required=True, help="a steerkit .safetensors vector file")
    p_gen.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for several)")
    p_gen.add_argument("--strength", type=float, nargs="+", default=[1.0],
                       help="one value for all attributes, or one per attribute")
    p_gen.add_argument("--tokens", default="all", help="all | prompt | generated | a start position")
    p_gen.add_argument("--max-new-tokens", type=int, default=40)
    p_gen.add_argument("--device", default=None, help="e.g. cuda; default: where the model loads")
    args = parser.parse_args(argv)
    if args.command == "generate":
        return _generate(args)
    if args.command == "info":
        from .info import info

        facts = info(print_it=not args.json)
        if args.json:
            print(json.dumps(facts, indent=1, default=str))
        return 0
    return 2


def _generate(args) -> int:
    import torch

    from .generate import compare, load_local_model
    from .vectors import SteeringVectors

    try:
        model, tok = load_local_model(args.model, device=args.device)
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
