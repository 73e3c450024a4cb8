"""Steering overhead in Hugging Face ``generate`` on a real model, against the hook-based libraries.

    python benches/hf_generate.py --out benches/results/cpu/hf_generate     # SmolLM2, the README's table

One run, interleaved (every repeat times every method at every batch size in turn, so drift hits all
alike), the median of ``--repeats``. Greedy ``generate`` of ``--new-tokens`` tokens after a prompt of
``--prompt-tokens``, at batch 1 and 8. Methods:

* ``unsteered``: the model as loaded;
* ``steerkit``: ``steerkit.steer`` with K=2 gated, norm-preserving vectors at ``block_out`` of 4 layers;
* ``hooks``: the same math as plain forward hooks in torch (``gpu.HookSteer``), what a hand-written
  hook does;
* ``steerkit K=1``: one ungated vector at the same 4 layers, what the two libraries can express;
* ``steering-vectors`` (``SteeringVector.apply``) and ``repeng`` (``ControlModel``): that one vector
  each, at the same layers (both number decoder blocks as steerkit's ``block_out`` does).

Before anything is timed, each steered method's first-step logits are checked: the gated ones against
the hooks, the K=1 ones against each other, and all of them against the unsteered logits, so no
method that steers nothing is timed. A library that is not installed is reported as such.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu import HookSteer, make_vectors, rel  # noqa: E402

import steerkit  # noqa: E402
from steerkit import SteeringVectors, hf  # noqa: E402
from steerkit.vectors import Entry  # noqa: E402

STRENGTH = torch.tensor([1.0, 0.5])


def _k1(vectors: SteeringVectors) -> SteeringVectors:
    """Attribute 0's direction alone, ungated: what repeng and steering-vectors hold."""
    return SteeringVectors({key: Entry(vectors[key].theta[:1].clone()) for key in vectors}, attributes=["a"],
                           gate_mode="none", norm_preserve=False)


@contextmanager
def _steerkit(model, vectors, strength):
    with steerkit.steer(model, vectors, strength=strength):
        yield model


@contextmanager
def _hooks(model, vectors):
    h = HookSteer(model, vectors, STRENGTH)
    try:
        yield model
    finally:
        h.remove()


@contextmanager
def _steering_vectors(model, k1):
    from steering_vectors import SteeringVector
    sv = SteeringVector(layer_activations={layer: k1[(s, layer)].theta[0] for s, layer in k1},
                        layer_type="decoder_block")
    with sv.apply(model, multiplier=1.0):
        yield model


@contextmanager
def _repeng(model, k1):
    from repeng import ControlModel, ControlVector
    layers = [layer for _, layer in k1]
    cm = ControlModel(model, layers)
    try:
        cm.set_control(ControlVector(model.config.model_type,
                                     {layer: k1[("block_out", layer)].theta[0].numpy() for layer in layers}), 1.0)
        yield cm
    finally:
        cm.unwrap()


def methods(model, vectors) -> dict:
    """name -> a context manager factory yielding the object whose ``generate`` is timed."""
    k1 = _k1(vectors)
    out = {"unsteered": lambda: _nullctx(model),
           "steerkit": lambda: _steerkit(model, vectors, STRENGTH),
           "hooks": lambda: _hooks(model, vectors),
           "steerkit K=1": lambda: _steerkit(model, k1, 1.0)}
    for name, module, ctx in (("steering-vectors", "steering_vectors", _steering_vectors), ("repeng", "repeng", _repeng)):
        try:
            __import__(module)
        except ImportError:
            continue
        out[name] = lambda ctx=ctx: ctx(model, k1)
    return out


@contextmanager
def _nullctx(model):
    yield model


def first_logits(model, make, ids) -> torch.Tensor:
    with make() as m, torch.no_grad():
        return m(input_ids=ids).logits[:, -1].float()


# whom each steered method must agree with: the same math, another implementation
PEERS = {"steerkit": "hooks", "steering-vectors": "steerkit K=1", "repeng": "steerkit K=1"}


def check(model, ms: dict, ids) -> dict:
    """Each method's first-step logits: steered ones differ from unsteered, and agree with their peer."""
    logits = {name: first_logits(model, make, ids) for name, make in ms.items()}
    report = {}
    for name, got in logits.items():
        if name == "unsteered":
            continue
        peer = PEERS.get(name)
        report[name] = {"changes_logits": rel(got, logits["unsteered"]), "vs": peer,
                        "rel_err": rel(got, logits[peer]) if peer else None}
        if report[name]["changes_logits"] < 1e-2 or (peer and report[name]["rel_err"] > 1e-3):
            raise RuntimeError(f"{name} does not steer as {peer} does: {report[name]}")
    return report


def timed_generate(model, make, ids, new_tokens: int, pad: int) -> float:
    with make() as m, torch.no_grad():
        t = time.perf_counter()
        out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=pad)
        wall = time.perf_counter() - t
    assert out.shape[1] == ids.shape[1] + new_tokens
    return wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--theta-scale", type=float, default=2.0, help="vector size (the stream's RMS is about 1-10)")
    ap.add_argument("--out", type=Path, default=None, help="folder for hf_generate.json and .md")
    args = ap.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)

    model, tok = hf.load_model(args.model, what="--model")
    model.eval()
    n = model.config.num_hidden_layers
    layers = [n * (i + 1) // 5 for i in range(4)]
    vectors = make_vectors(model, "block_out", layers, k=2)
    vectors = SteeringVectors({key: Entry(e.theta * (args.theta_scale / 0.02), e.gate_w, e.gate_b)
                               for key, e in ((k, vectors[k]) for k in vectors)},
                              attributes=vectors.attributes, norm_preserve=True)
    ms = methods(model, vectors)
    g = torch.Generator().manual_seed(0)
    ids = {b: torch.randint(3, model.config.vocab_size, (b, args.prompt_tokens), generator=g) for b in args.batches}
    checks = check(model, ms, ids[1])
    print("checks:", json.dumps(checks), flush=True)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for b in args.batches:  # warm-up: allocator, fused-path first calls
        for make in ms.values():
            timed_generate(model, make, ids[b], 4, pad)
    times = {b: {name: [] for name in ms} for b in args.batches}
    for rep in range(args.repeats):
        for b in args.batches:
            for name, make in ms.items():
                times[b][name].append(timed_generate(model, make, ids[b], args.new_tokens, pad))
        print(f"repeat {rep + 1}/{args.repeats} done", flush=True)
    rows = []
    for b in args.batches:
        base = statistics.median(times[b]["unsteered"])
        for name in ms:
            ts = times[b][name]
            med = statistics.median(ts)
            rows.append({"batch": b, "method": name, "ms_per_token": 1e3 * med / args.new_tokens,
                         "vs_unsteered": med / base, "spread": [min(ts) / base, max(ts) / base]})
    lines = [f"| batch | method | ms per token | vs unsteered | range over {args.repeats} repeats |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['method']} | {r['ms_per_token']:.2f} | {r['vs_unsteered']:.3f}x | "
                     f"{r['spread'][0]:.3f}–{r['spread'][1]:.3f}x |")
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        import transformers
        info = {"model": args.model, "layers": layers, "k": 2, "new_tokens": args.new_tokens,
                "prompt_tokens": args.prompt_tokens, "repeats": args.repeats, "torch": torch.__version__,
                "transformers": transformers.__version__, "threads": torch.get_num_threads(), "checks": checks,
                "libraries": {m: _version(m) for m in ("steering_vectors", "repeng")}}
        (args.out / "hf_generate.json").write_text(json.dumps({**info, "rows": rows, "times_s": {
            str(b): t for b, t in times.items()}}, indent=1))
        (args.out / "hf_generate.md").write_text(
            f"HF generate on {args.model}: {args.new_tokens} new tokens after {args.prompt_tokens}, steering at "
            f"block_out layers {layers}; torch {torch.__version__}, transformers {transformers.__version__}, "
            f"{torch.get_num_threads()} threads; median of {args.repeats} interleaved repeats.\n\n{table}\n")
    return 0


def _version(module: str):
    try:
        from importlib.metadata import version
        return version(module.replace("_", "-"))
    except Exception:  # noqa: BLE001 - not installed
        return None


if __name__ == "__main__":
    sys.exit(main())
