"""The unsteered and the steered continuation of each prompt, with what the gates did at every token.

The steered continuation is ``steerkit generate``'s own (one left-padded batch, greedy, the patch's default
paths); a watcher on the patch (``Steering.watch``) records, at every steered activation of that very
generation, the gates and the strength × gate that were applied. So nothing is recomputed or approximated:
a token's gate is the one computed on that token's activation, which steers the prediction of the token
after it. The last generated token is never fed back, so it has no gate (NaN).

The unsteered continuation is read once more in a single forward under a patch of strength 0 on the hook
path, which leaves every activation exactly as it is (x + 0·θ): its gates are the ones the steering would
see on the unsteered text. Each token's NLL (-log p(token | the tokens before)) is under the unsteered model,
for both continuations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import reference
from ..generate import encode_prompts, greedy_ids
from ..patching import steer
from ..steering import check_tokens
from ..strengths import strength_values
from ..vectors import SteeringVectors


@dataclass
class Trace:
    """One prompt and one continuation of it, token by token. ``gates`` and ``applied`` are
    [places, tokens, K] float32 (places: the vectors' (site, layer) keys, in ``Inspection.places`` order);
    ``applied`` is strength × gate as applied (0 where the token policy left a token unsteered, and 0
    everywhere in the unsteered continuation); ``nll`` [tokens] is under the unsteered model, NaN for the
    first token. Gates are NaN where no forward read a token (the last generated one)."""
    ids: list[int]
    tokens: list[str]
    prompt_len: int
    text: str  # the continuation, decoded as ``steerkit generate`` prints it
    gates: torch.Tensor
    applied: torch.Tensor
    nll: torch.Tensor


@dataclass
class PromptView:
    prompt: str
    unsteered: Trace
    steered: Trace


@dataclass
class Inspection:
    """``steerkit.inspect``'s result: per prompt, both continuations with their per-token gates."""
    attributes: list[str]
    places: list[tuple[str, int]]
    strength: list[float]  # one per attribute, as applied
    tokens: object  # the token policy
    views: list[PromptView] = field(default_factory=list)

    @property
    def gates(self) -> torch.Tensor:
        """The steered continuations' gates, [prompts, places, tokens, K], NaN past each prompt's end."""
        n = max(len(v.steered.ids) for v in self.views)
        out = torch.full((len(self.views), len(self.places), n, len(self.attributes)), float("nan"))
        for i, v in enumerate(self.views):
            out[i, :, :len(v.steered.ids)] = v.steered.gates
        return out

    def to_html(self) -> str:
        from .html import render

        return render(self)

    def save_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    def save_png(self, path: str | Path) -> Path:
        from .figure import save_png

        return save_png(self, path)


class Recorder:
    """A ``Steering.watch`` callback: per (site, layer), each forward call's gates and strength × gate as
    [B, t, K] float32 on the CPU."""

    def __init__(self, steering, batch: int):
        self.steering, self.batch = steering, batch
        self.calls: dict[tuple[str, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def __call__(self, key, x: torch.Tensor, strength: torch.Tensor) -> None:
        e = self.steering.entry(key)
        rows = x.detach().reshape(-1, x.shape[-1]).float()
        k = e.theta.shape[0]
        _, gates = reference.gated_steer(rows, e.theta.float(), None if e.gate_w is None else e.gate_w.float(),
                                         e.gate_b, torch.zeros(k, device=rows.device))
        s = strength.detach().float().reshape(-1, k).expand(rows.shape[0], k)  # [K] or a row per token
        shape = (self.batch, -1, k)
        self.calls.setdefault(key, []).append((gates.reshape(shape).cpu(), (s * gates).reshape(shape).cpu()))

    def steps(self, key) -> list[int]:
        return [g.shape[1] for g, _ in self.calls.get(key, [])]

    def stacked(self, places) -> tuple[torch.Tensor, torch.Tensor]:
        """(gates, applied), each [places, B, T, K] over the calls in order."""
        return tuple(torch.stack([torch.cat([c[i] for c in self.calls[key]], 1) for key in places])
                     for i in (0, 1))


def token_texts(tok, ids: list[int]) -> list[str]:
    """Each token as the text it adds to the ones before (a lone decode drops a SentencePiece token's
    leading space); a token inside a multi-byte character falls back to its own decode."""
    out, before = [], ""
    for i in range(len(ids)):
        text = tok.decode(ids[:i + 1])
        out.append(text[len(before):] if text.startswith(before) else tok.decode(ids[i:i + 1]))
        before = text
    return out


def read_tokens(model, vectors: SteeringVectors, places, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward of ``ids`` under a strength-0 patch on the hook path (every activation unchanged):
    the gates the steering would see, [places, T, K], and each token's NLL under the unsteered model."""
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    with steer(model, vectors, strength=0.0, fused=False) as handle:
        rec = Recorder(handle.steering, 1)
        watching = handle.steering.watch(rec)
        try:
            with torch.no_grad():
                logits = model(input_ids=x).logits[0].float()
        finally:
            watching.remove()
    gates, _ = rec.stacked(places)
    logp = torch.log_softmax(logits[:-1], -1).gather(1, x[0, 1:, None]).squeeze(1).cpu()
    nll = torch.cat([torch.tensor([float("nan")]), -logp])
    return gates[:, 0], nll


def check_prompts(prompts) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError(f"prompts: expected one or more non-empty strings, got {prompts!r}")
    return prompts


def inspect(model, tokenizer, vectors: SteeringVectors, prompts, strength=None, tokens="all",
            max_new_tokens: int = 40, chat: bool = False) -> Inspection:
    """The unsteered and the steered greedy continuation of each prompt (as ``steerkit generate`` makes
    them), with each token's gates, strength × gate and NLL under the unsteered model. ``strength``: as
    ``patch`` takes it; None is the file's suggested strength (``steerkit bench-steer``), else 1."""
    prompts = check_prompts(prompts)
    tokens = check_tokens(tokens)
    if strength is None:
        strength = vectors.provenance.get("suggested_strength") or 1.0
    if isinstance(strength, torch.Tensor):
        if strength.shape != (vectors.num_attributes,):
            raise ValueError(f"strength: inspect takes one strength per attribute ([K={vectors.num_attributes}]), "
                             f"got shape {list(strength.shape)}")
        strength = strength.tolist()
    values = strength_values(strength, vectors.attributes)
    values = [values] * vectors.num_attributes if isinstance(values, float) else values
    places = sorted(vectors, key=lambda key: (key[1], key[0]))

    batch = encode_prompts(tokenizer, prompts, chat)
    plain, _ = greedy_ids(model, tokenizer, prompts, max_new_tokens, chat)
    with steer(model, vectors, strength=torch.tensor(values), tokens=tokens) as handle:
        rec = Recorder(handle.steering, len(prompts))
        watching = handle.steering.watch(rec)
        try:
            steered, _ = greedy_ids(model, tokenizer, prompts, max_new_tokens, chat)
        finally:
            watching.remove()
    width = batch["input_ids"].shape[1]
    for key in places:  # a prefill, then one token a step: anything else would misplace the gates
        steps = rec.steps(key)
        if not steps or steps[0] != width or any(t != 1 for t in steps[1:]):
            raise ValueError(f"inspect: the generation read {steps} tokens per call at {key[0]} layer {key[1]}, "
                             f"not a prefill of {width} and then one token a step (a model that generates without "
                             "a KV cache cannot be inspected)")
    gates, applied = rec.stacked(places)  # [places, B, width + steps - 1, K]
    seen = gates.shape[2]
    result = Inspection(list(vectors.attributes), places, values, tokens)
    for b, prompt in enumerate(prompts):
        pad = width - int(batch["attention_mask"][b].sum())
        prompt_ids = batch["input_ids"][b, pad:].tolist()
        traces = []
        for cont, run in ((plain[b], None), (steered[b], (gates[:, b], applied[:, b]))):
            ids = prompt_ids + cont
            would, nll = read_tokens(model, vectors, places, ids)
            if run is None:
                g, a = would, torch.zeros_like(would)
            else:  # the generation's own record: prompt tokens from the prefill, then one per step
                g = torch.full_like(would, float("nan"))
                a = g.clone()
                n = min(len(ids), seen - pad)
                g[:, :n], a[:, :n] = run[0][:, pad:pad + n], run[1][:, pad:pad + n]
            traces.append(Trace(ids, token_texts(tokenizer, ids), len(prompt_ids),
                                tokenizer.decode(cont, skip_special_tokens=True), g, a, nll))
        result.views.append(PromptView(prompt, *traces))
    return result
