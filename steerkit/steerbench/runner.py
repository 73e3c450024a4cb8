"""Generation and scoring for the benchmark: a batch of runs (``Job``) in one ``generate`` with a strength
row per sequence, scored by the judges, NLL under the unsteered model and distinct-3; and the
activations a draw trains on, from activations of every text computed once."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from ..generate import greedy_ids
from ..mat.collect import Activations, kept_rows, provenance_of
from ..mat.data import load_examples
from ..patching import steer
from . import measures
from .config import BenchSettings
from .data import Draw


@dataclass
class Job:
    """One generation run of a batch: prompts, the strength of each attribute (None: unsteered), an
    instruction put before each prompt (prompting), and whether its tokens are compared with the
    unsteered continuations of the same prompts (the runs on prompts that carry the attribute)."""

    prompts: list
    strength: list | None = None
    prefix: str = ""
    carrying: bool = False


class Runner:
    """Generation and scoring on one model, with the unsteered runs of a seed to measure shifts from."""

    def __init__(self, model, tok, attributes, settings: BenchSettings, judges: dict, mat_config=None):
        self.model, self.tok, self.attributes, self.s, self.judges = model, tok, attributes, settings, judges
        self.mat_config = mat_config
        # what the unsteered model gives, kept for the whole run, since the model does not change: its
        # greedy continuation of a prompt (the same on every seed), and the NLL of a (prompt, continuation)
        # pair (a sweep's low strengths, and any gates that stay shut, give the unsteered text again)
        self._plain: dict[str, list[int]] = {}
        self._nll: dict[tuple[str, tuple[int, ...]], float] = {}

    def measure(self, jobs: list[Job], vectors=None, tokens: str = "all") -> list[tuple[dict, list, list]]:
        """(scores, ids, texts) of each job, all generated in one batched ``generate`` with a strength
        row per sequence (``[B, K]``), then scored together: judge means, NLL per token given the plain
        prompt (prompting's instruction left out, so every method is scored on the same condition),
        distinct-3. ``tokens``: which tokens the vectors steer (``steerkit.steer``'s)."""
        if not jobs:
            return []
        prompts = [j.prefix + p for j in jobs for p in j.prompts]
        steered = [j for j in jobs if j.strength is not None]
        if steered and len(steered) != len(jobs):
            raise ValueError("a batch is all steered or all unsteered")
        if steered:
            rows = torch.tensor([j.strength for j in jobs for _ in j.prompts], dtype=torch.float32)
            with steer(self.model, vectors, strength=rows, tokens=tokens):
                ids, _ = greedy_ids(self.model, self.tok, prompts, self.s.max_new_tokens)
        else:
            todo = [p for p in dict.fromkeys(prompts) if p not in self._plain]
            if todo:
                self._plain.update(zip(todo, greedy_ids(self.model, self.tok, todo, self.s.max_new_tokens)[0]))
            ids = [self._plain[p] for p in prompts]
        texts = [self.tok.decode(i, skip_special_tokens=True) for i in ids]
        nll = self._nll_of([p for j in jobs for p in j.prompts], ids)
        judged = {a: self.judges[a](texts) for a in self.attributes}
        out, start = [], 0
        for j in jobs:
            part = slice(start, start + len(j.prompts))
            start = part.stop
            scores = dict(judge={a: statistics.fmean(judged[a][part]) for a in self.attributes},
                          nll=statistics.fmean(nll[part]), distinct3=measures.distinct(texts[part]))
            out.append((scores, ids[part], texts[part]))
        return out

    def _nll_of(self, prompts: list[str], ids: list[list[int]]) -> list[float]:
        """``measures.nll`` of each (prompt, continuation), scoring only the pairs not scored before."""
        keys = [(p, tuple(i)) for p, i in zip(prompts, ids)]
        todo = list(dict.fromkeys(k for k in keys if k not in self._nll))
        if todo:
            self._nll.update(zip(todo, measures.nll(self.model, self.tok, [p for p, _ in todo], [list(i) for _, i in todo])))
        return [self._nll[k] for k in keys]


def activations(model, tok, pool_rows: dict, d: Draw, site: str, layer: int) -> Activations:
    attrs = list(dict.fromkeys(r["attribute"] for r in d.train))
    pos = {a: torch.cat([kept_rows(pool_rows[r["text"]], "all") for r in d.train
                         if r["attribute"] == a and r["label"] == "positive"]) for a in attrs}
    neg = {a: torch.cat([kept_rows(pool_rows[r["text"]], "all") for r in d.train
                         if r["attribute"] == a and r["label"] == "negative"]) for a in attrs}
    return Activations(site, layer, "all", attrs, pos, neg, provenance_of(model, load_examples(d.train), 256))
