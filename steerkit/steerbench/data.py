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
CARRYING = {"sentiment": corpus.PROMPTS_POSITIVE, "food": corpus.PROMPTS_FOOD, "space": corpus.PROMPTS_SPACE}
BUILTIN = ("sentiment", "food", "space")   # every built-in attribute, each with its own judge
DEFAULT_ATTRIBUTES = ("sentiment", "food")  # what a run steers unless told: the tables measured so far


def builtin_pool(attributes=DEFAULT_ATTRIBUTES) -> list[dict]:
    """The built-in training texts of ``attributes`` as ``{text, attribute, label}``."""
    unknown = [a for a in attributes if a not in BUILTIN]
    if unknown or not attributes:
        raise ValueError(f"attributes: the built-in ones are {', '.join(BUILTIN)}, got {list(attributes)}")
    rows = []
    for a in dict.fromkeys(attributes):
        if a == "sentiment":
            s = corpus.sentiment_texts()
            rows += [dict(text=t, attribute=a, label="positive") for t in s["positive"]]
            # negatives: as many negative as neutral sentences, interleaved so any prefix is balanced
            rows += [dict(text=t, attribute=a, label="negative") for pair in zip(s["negative"], s["neutral"])
                     for t in pair]
        else:
            texts = corpus.food_texts() if a == "food" else corpus.space_texts()
            rows += [dict(text=t, attribute=a, label="positive") for t in texts[a]]
            rows += [dict(text=t, attribute=a, label="negative") for t in texts["other"]]
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
