"""MAT-Steer training examples: ``{text, attribute, label}`` with label ``positive`` (the text has
the attribute we want) or ``negative`` (the behaviour to steer away from), from a Python list or a
JSONL file, validated once so every later stage can trust them."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from ..jsonl import read_jsonl

LABELS = ("positive", "negative")


@dataclass(frozen=True)
class Example:
    text: str
    attribute: str
    label: str  # "positive" | "negative"


def _example(i: int, raw, where: str) -> Example:
    if isinstance(raw, Example):
        raw = {"text": raw.text, "attribute": raw.attribute, "label": raw.label}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} example {i}: expected a dict with text, attribute, label; got {type(raw).__name__}")
    missing = [k for k in ("text", "attribute", "label") if k not in raw]
    if missing:
        raise ValueError(f"{where} example {i}: missing {', '.join(missing)} (each example needs text, attribute, label)")
    text, attribute, label = raw["text"], raw["attribute"], raw["label"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where} example {i}: text must be a non-empty string, got {text!r}")
    if not isinstance(attribute, str) or not attribute.strip():
        raise ValueError(f"{where} example {i}: attribute must be a non-empty name, got {attribute!r}")
    if label not in LABELS:
        raise ValueError(f"{where} example {i}: unknown label {label!r}; expected 'positive' or 'negative'")
    return Example(text, attribute.strip(), label)


def load_examples(source: str | Path | Iterable) -> list[Example]:
    """Examples from a ``.jsonl`` path (one JSON object per line) or an iterable of dicts/``Example``s."""
    if isinstance(source, (str, Path)):
        rows, where = read_jsonl(source), str(source)
    else:
        rows, where = list(source), "data"
    examples = [_example(i, r, where) for i, r in enumerate(rows)]
    if not examples:
        raise ValueError(f"{where}: no examples")
    return examples


def by_attribute(examples: list[Example]) -> dict[str, dict[str, list[str]]]:
    """``{attribute: {"positive": [texts], "negative": [texts]}}`` in first-seen attribute order;
    every attribute must have both."""
    groups: dict[str, dict[str, list[str]]] = {}
    for e in examples:
        groups.setdefault(e.attribute, {"positive": [], "negative": []})[e.label].append(e.text)
    for attr, g in groups.items():
        for label in LABELS:
            if not g[label]:
                raise ValueError(f"attribute {attr!r} has no {label} examples; MAT-Steer needs both positives "
                                 "(the behaviour to keep) and negatives (the behaviour to edit)")
    return groups


def data_hash(examples: list[Example]) -> str:
    """A short digest of the examples, order included: provenance and the activation-cache key."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.text, e.attribute, e.label]).encode())
    return h.hexdigest()[:16]
