"""What the benchmark trains on and generates from: the pool of labelled texts, the draw each data
seed takes from it, and the prompts.

For the built-in attributes, an attribute's negatives are the texts that lack it: for sentiment the
negative *and* the neutral sentences (the text a user steers is mostly neutral, so the gates must learn
to open there too), for food the sentences on other topics."""
from __future__ import annotations

import random
from dataclasses import dataclass

from . import corpus

# built-in prompts that already carry each attribute (selectivity: steering should leave them be)
CARRYING = {"sentiment": corpus.PROMPTS_POSITIVE, "food": corpus.PROMPTS_FOOD}


def builtin_pool() -> list[dict]:
    """Every built-in training text as ``{text, attribute, label}``."""
    s, f = corpus.sentiment_texts(), corpus.food_texts()
    rows = [dict(text=t, attribute="sentiment", label="positive") for t in s["positive"]]
    # negatives: as many negative as neutral sentences, interleaved so any prefix is balanced
    rows += [dict(text=t, attribute="sentiment", label="negative")
             for pair in zip(s["negative"], s["neutral"]) for t in pair]
    rows += [dict(text=t, attribute="food", label="positive") for t in f["food"]]
    rows += [dict(text=t, attribute="food", label="negative") for t in f["other"]]
    return rows


@dataclass
class Draw:
    """One data seed's share of the pool: the training examples and, per attribute, prompts that
    already carry it."""

    seed: int
    train: list[dict]
    carrying: dict[str, list[str]]


def draw(pool: list[dict], seed: int, per_class: int, carrying_prompts: int) -> Draw:
    """``per_class`` texts of each (attribute, label), drawn by ``seed``. Prompts that carry an
    attribute come from ``CARRYING`` for the built-in attributes, else from the first words of
    positives this seed left out of training."""
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[str]] = {}
    for r in pool:
        groups.setdefault((r["attribute"], r["label"]), []).append(r["text"])
    train, carrying = [], {}
    for (attr, label), texts in groups.items():
        order = rng.sample(texts, len(texts))
        chosen, rest = order[:per_class], order[per_class:]
        train += [dict(text=t, attribute=attr, label=label) for t in chosen]
        if label == "positive":
            if attr in CARRYING:
                carrying[attr] = list(CARRYING[attr][:carrying_prompts])
            else:  # the first 60% of a held-out positive's words: a prompt well into the attribute
                carrying[attr] = [" ".join(t.split()[:max(2, int(0.6 * len(t.split())))])
                                  for t in (rest or order)[:carrying_prompts]]
    return Draw(seed, train, carrying)
