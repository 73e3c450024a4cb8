"""Focus accuracy: each prompt's prediction is the valid label with the highest log-likelihood (the sum
of its tokens' log-probabilities after the prompt), so a model is never marked wrong for answering
outside the label set; accuracy is counted per focus type and per test split.

Scoring runs the LM head on the label positions only (``loss.target_logits``), as training does, so
a batch never holds ``[batch, tokens, vocab]`` logits; a model without a separable head (anything
that only returns logits) is scored from its full logits."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from . import templates
from .data import FocusRecord, load_records
from .encode import encode, pad_batch, pad_id
from .loss import causal_lm, target_logits


def _has_head(model) -> bool:
    try:
        return hasattr(causal_lm(model), "base_model")
    except ValueError:
        return False


def _position_logprobs(model, batch: dict, labels: torch.Tensor, lean: bool):
    """The log-softmax at every label position of the batch: ``(logp [n, vocab], targets [n], rows [n])``,
    where ``rows`` is the batch row of each position."""
    if lean:
        logits, target, keep = target_logits(model, labels=labels, **batch)
    else:
        target, keep = labels[:, 1:], labels[:, 1:] != -100
        logits = model(**batch).logits[:, :-1][keep].float()
        target = target[keep]
    return torch.log_softmax(logits, dim=-1), target, keep.nonzero()[:, 0]


def _jobs(tok, records: list[FocusRecord], max_length: int | None) -> list[tuple[int, int | None, tuple]]:
    """What to run: ``(record, choice, (prompt_ids, completion_ids))``. A record whose choices are one
    token each after the same prompt ids is one job (choice None) whose single forward scores them all
    (half the work for two labels); otherwise each choice is a job of its own."""
    jobs = []
    for i, r in enumerate(records):
        enc = [encode(tok, r.prompt, r.completion(c), r.chat, max_length) for c in r.choices]
        if all(len(c) == 1 and p == enc[0][0] for p, c in enc):
            jobs.append((i, None, (enc[0][0], enc[0][1], [c[0] for _, c in enc])))
        else:
            jobs += [(i, j, (p, c, None)) for j, (p, c) in enumerate(enc)]
    return jobs


@torch.no_grad()
def score_choices(model, tok, records: list[FocusRecord], batch_size: int = 32, max_length: int | None = None,
                  progress: bool = False) -> list[list[float]]:
    """Per record, the log-likelihood of each of its choices as the completion of its prompt."""
    from ..progress import bar

    records = load_records(records)
    jobs = _jobs(tok, records, max_length)
    scores = [[0.0] * len(r.choices) for r in records]
    order = sorted(range(len(jobs)), key=lambda k: -sum(map(len, jobs[k][2][:2])))  # little padding per batch
    device = next(model.parameters()).device
    lean = _has_head(model)
    was_training = model.training
    model.eval()
    try:
        for s in bar(range(0, len(order), batch_size), desc="scoring labels", unit="batch", enabled=progress, leave=False):
            chunk = [jobs[k] for k in order[s:s + batch_size]]
            batch = {k: v.to(device) for k, v in pad_batch([(p, c) for _, _, (p, c, _) in chunk], pad_id(tok)).items()}
            logp, target, rows = _position_logprobs(model, batch, batch.pop("labels"), lean)
            summed = torch.zeros(len(chunk), dtype=logp.dtype, device=logp.device).index_add_(
                0, rows, logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)).tolist()
            first = {}  # a single-token job's one label position
            for n, r in enumerate(rows.tolist()):
                first.setdefault(r, n)
            for b, (i, j, (_, _, tokens)) in enumerate(chunk):
                if j is not None:
                    scores[i][j] = summed[b]
                else:
                    scores[i] = logp[first[b], tokens].tolist()
    finally:
        model.train(was_training)
    return scores


def predict(model, tok, records, batch_size: int = 32, max_length: int | None = None, progress: bool = False):
    records = load_records(records)
    scores = score_choices(model, tok, records, batch_size, max_length, progress)
    return [r.choices[max(range(len(s)), key=s.__getitem__)] for r, s in zip(records, scores)]


def hits_by(records, predictions, key=lambda r: r.focus_type) -> dict[str, list[bool]]:
    """Whether each prediction is its record's target, grouped by ``key`` of the record (its focus type by
    default): what every focus accuracy in steerkit is counted from."""
    hits: dict[str, list[bool]] = {}
    for r, p in zip(records, predictions, strict=True):
        hits.setdefault(key(r), []).append(p == r.target)
    return hits


def rates(hits: Mapping[str, list[bool]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in hits.items() if v}


@dataclass
class FocusReport:
    """accuracy[split][focus_type] and the count behind it; predictions per split, in record order."""
    accuracy: dict[str, dict[str, float]]
    count: dict[str, dict[str, int]]
    predictions: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "count": self.count}

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict() | {"predictions": self.predictions}, indent=1))
        return path

    def types(self) -> list[str]:
        seen = {t for per in self.accuracy.values() for t in per}
        return [t for t in templates.FOCUS_TYPES if t in seen]

    def mean(self, split: str) -> float:
        """Focus accuracy averaged over the focus types scored on ``split``, each type weighted alike."""
        per = self.accuracy[split]
        return sum(per.values()) / len(per)

    def table(self, title: str = "focus accuracy") -> str:
        splits = list(self.accuracy)
        width = max(len(templates.PRETTY[t]) for t in self.types()) + 2
        lines = [f"{title:<{width}}" + "".join(f"{s:>10}" for s in splits)]
        for t in self.types():
            cells = [f"{self.accuracy[s][t]:>10.3f}" if t in self.accuracy[s] else f"{'-':>10}" for s in splits]
            lines.append(f"{templates.PRETTY[t]:<{width}}" + "".join(cells))
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str = "focus accuracy") -> Path:
        """A grouped bar chart (focus types × splits) as PNG; needs matplotlib (``pip install matplotlib``)."""
        plt = _pyplot("FocusReport.plot")
        types, splits = self.types(), list(self.accuracy)
        fig, ax = plt.subplots(figsize=(1.3 * len(types) + 2, 3.6))
        w = 0.8 / len(splits)
        for k, s in enumerate(splits):
            xs = [i + (k - (len(splits) - 1) / 2) * w for i in range(len(types))]
            ax.bar(xs, [self.accuracy[s].get(t, float("nan")) for t in types], w, label=s)
        ax.set_xticks(range(len(types)), [templates.PRETTY[t] for t in types], rotation=20, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("focus accuracy")
        ax.set_title(title)
        ax.legend(fontsize=8, ncol=len(splits), loc="lower center")
        return _save(plt, fig, path)


def evaluate(model, tok, test_sets: Mapping[str, list] | list, batch_size: int = 32, max_length: int | None = None,
             progress: bool = False) -> FocusReport:
    """Focus accuracy per split and focus type. ``test_sets`` maps a split name to its records (a bare
    list is one split called ``test``)."""
    if not isinstance(test_sets, Mapping):
        test_sets = {"test": test_sets}
    if not test_sets:
        raise ValueError("test_sets: no splits to evaluate")
    acc, count, preds = {}, {}, {}
    for split, records in test_sets.items():
        records = load_records(records)
        preds[split] = predict(model, tok, records, batch_size, max_length, progress)
        hits = hits_by(records, preds[split])
        acc[split] = rates(hits)
        count[split] = {t: len(v) for t, v in hits.items()}
    return FocusReport(acc, count, preds)


def radar(series: Mapping[str, Mapping[str, float]], path: str | Path, title: str = "focus accuracy") -> Path:
    """A radar plot (PNG) of focus accuracy per focus type, one closed line per named series
    (``{"FIT": {focus_type: accuracy}, ...}``); needs matplotlib."""
    import math

    plt = _pyplot("focus.evaluation.radar")

    types = [t for t in templates.FOCUS_TYPES if any(t in s for s in series.values())]
    angles = [2 * math.pi * k / len(types) for k in range(len(types))]
    fig, ax = plt.subplots(figsize=(5.2, 5.2), subplot_kw={"projection": "polar"})
    for name, acc in series.items():
        values = [acc.get(t, float("nan")) for t in types]
        ax.plot(angles + angles[:1], values + values[:1], marker="o", label=name)
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.12)
    ax.set_xticks(angles, [templates.PRETTY[t] for t in types], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0], ["0.25", "0.5", "0.75", "1"], fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", bbox_to_anchor=(1.15, -0.08), fontsize=8)
    return _save(plt, fig, path)


def _pyplot(who: str):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"{who} needs matplotlib: pip install matplotlib") from None
    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
