"""A template corpus of short reviews with two independent attributes, each decided by a rule:

* sentiment: positive or negative adjectives ("great" / "awful");
* formality: formal or casual intensifiers and tags ("truly ... indeed" / "super ... lol").

A review is ``review : <clause> <clause> <clause>`` and keeps one sentiment and one register
throughout, so a model trained on it continues a prompt in the prompt's own sentiment and register,
and steering one attribute should leave the other where it was.
"""
from __future__ import annotations

import random

SUBJECTS = ["food", "staff", "room", "movie", "music", "price", "view", "service", "coffee", "hotel", "show", "bed"]
WORDS = {
    ("sentiment", True): ["great", "lovely", "wonderful", "excellent", "superb", "delightful"],
    ("sentiment", False): ["awful", "terrible", "dreadful", "horrible", "poor", "disappointing"],
    ("formality", True): ["truly", "rather", "remarkably", "quite", "indeed", "certainly"],
    ("formality", False): ["super", "totally", "so", "really", "lol", "tbh"],
}
INTENSIFIERS = {True: WORDS[("formality", True)][:4], False: WORDS[("formality", False)][:4]}
TAGS = {True: WORDS[("formality", True)][4:], False: WORDS[("formality", False)][4:]}
# attribute -> (name of the wanted value, name of the other), as steering targets
ATTRIBUTES = {"sentiment": ("positive", "negative"), "formality": ("formal", "casual")}
PREFIX = "review :"


def clause(rng: random.Random, positive: bool, formal: bool) -> str:
    first, second = rng.sample(WORDS[("sentiment", positive)], 2)
    return (f"the {rng.choice(SUBJECTS)} was {rng.choice(INTENSIFIERS[formal])} {first} and {second} "
            f"{rng.choice(TAGS[formal])} .")


def review(rng: random.Random, positive: bool, formal: bool, clauses: int = 3) -> str:
    return " ".join([PREFIX] + [clause(rng, positive, formal) for _ in range(clauses)])


def texts(n: int, seed: int = 0) -> list[tuple[str, bool, bool]]:
    """n reviews as (text, positive, formal), the four combinations equally often."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive, formal = bool(i & 1), bool(i & 2)
        out.append((review(rng, positive, formal), positive, formal))
    rng.shuffle(out)
    return out


def vocabulary() -> list[str]:
    words = [PREFIX.split()[0], ":", "the", "was", "and", "."] + SUBJECTS
    for ws in WORDS.values():
        words += ws
    return words


def detect(text: str) -> dict[str, bool | None]:
    """Per attribute: True (positive / formal), False (negative / casual) or None (no marker, or a tie)."""
    toks = text.split()
    out = {}
    for attr in ATTRIBUTES:
        yes = sum(t in WORDS[(attr, True)] for t in toks)
        no = sum(t in WORDS[(attr, False)] for t in toks)
        out[attr] = None if yes == no else yes > no
    return out


def mat_examples(n: int, seed: int = 1) -> list[dict]:
    """MAT-Steer training data: every review is one example for each attribute, labelled positive when
    it has the wanted value (positive sentiment, formal register)."""
    rows = []
    for text, positive, formal in texts(n, seed):
        rows.append({"text": text, "attribute": "sentiment", "label": "positive" if positive else "negative"})
        rows.append({"text": text, "attribute": "formality", "label": "positive" if formal else "negative"})
    return rows


def prompts(n: int, seed: int = 2) -> list[tuple[str, bool, bool]]:
    """Held-out prompts ``review : <one clause>`` as (prompt, positive, formal), combinations balanced."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive, formal = bool(i & 1), bool(i & 2)
        out.append((f"{PREFIX} {clause(rng, positive, formal)}", positive, formal))
    return out
