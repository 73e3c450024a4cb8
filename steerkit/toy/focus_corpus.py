"""The focus toy: a sentiment task whose label follows a core feature (the sentiment adjective) while a
spurious feature (the colour of the box the item came in) is tied to a label: blue to positive, red to
negative. The builder sets how often the two agree, so training can have the paper's 90% and a test
split can flip it. Reviews also carry neutral adjectives, so reading the sentiment takes knowing which
words carry it, while the colour is one fixed word in a fixed place: the easier cue to latch onto."""
from __future__ import annotations

import random
import re

from ..focus import templates
from ..focus.data import PROMPT, FocusTask
from .model import ToyCorpus

POSITIVE = ["great", "lovely", "wonderful", "excellent", "superb", "delightful", "fantastic", "pleasant",
            "brilliant", "charming", "perfect", "splendid"]
NEGATIVE = ["awful", "terrible", "dreadful", "horrible", "poor", "disappointing", "nasty", "bad", "broken",
            "boring", "ugly", "useless"]
NEUTRAL = ["new", "small", "large", "old", "round", "square", "heavy", "light", "plain", "simple"]
SUBJECTS = ["food", "staff", "room", "movie", "music", "price", "view", "service", "coffee", "hotel", "show", "bed",
            "lamp", "chair", "book", "phone"]
COLOURS = {"blue": "positive", "red": "negative"}

TASK = FocusTask(
    instruction="Classify the sentiment of the review as positive or negative.",
    labels=("positive", "negative"),
    core="sentiment",
    spurious="colour",
    spurious_labels=COLOURS,
    describe={"sentiment": "the sentiment", "colour": "the box colour"},
)


def review(rng: random.Random, positive: bool, colour: str) -> str:
    a, b, c = rng.sample(SUBJECTS, 3)
    first, second = rng.sample(POSITIVE if positive else NEGATIVE, 2)
    clauses = [f"the {a} was {first} .", f"the {b} was {second} .", f"the {c} was {rng.choice(NEUTRAL)} ."]
    rng.shuffle(clauses)
    return " ".join(clauses + [f"it came in a {colour} box ."])


def examples(n: int, agree: float, seed: int = 0) -> list[dict]:
    """n examples, labels balanced, in which the box colour's tied label equals the true label in
    round(agree * n) of them."""
    rng = random.Random(seed)
    k = round(agree * n)
    out = []
    for i in range(n):
        positive = bool(i & 1)
        label = "positive" if positive else "negative"
        same = i < k
        colour = next(c for c, y in COLOURS.items() if (y == label) == same)
        out.append({"input": review(rng, positive, colour), "label": label,
                    "features": {"sentiment": label, "colour": colour}})
    rng.shuffle(out)
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]+", text)  # what the toy tokenizer's pre-tokenizer splits into


def vocabulary() -> list[str]:
    words = POSITIVE + NEGATIVE + NEUTRAL + SUBJECTS + list(COLOURS) + list(TASK.labels)
    words += _words(PROMPT.format(instruction=TASK.instruction, input="the was it came in a box", focus=""))
    for t in templates.FOCUS_TYPES:
        for held in (False, True):
            for w in templates.wordings(t, held):
                words += _words(templates.render(w, TASK.phrase(TASK.core), TASK.phrase(TASK.spurious)))
    return list(dict.fromkeys(words))


def pretraining_texts(n: int, seed: int = 0) -> list[str]:
    """The base model's "English": task prompts of every focus type and wording (held-out wordings
    too), with no answer and the colour independent of the sentiment. Both sentiment words of a review
    share its polarity, so the base model learns which words go together; it never sees a label."""
    rng = random.Random(seed)
    core, spur = TASK.phrase(TASK.core), TASK.phrase(TASK.spurious)
    out = []
    for _ in range(n):
        t = rng.choice(templates.FOCUS_TYPES)
        focus = templates.render(rng.choice(templates.wordings(t, rng.random() < 0.3)), core, spur)
        text = review(rng, rng.random() < 0.5, rng.choice(list(COLOURS)))
        out.append(PROMPT.format(instruction=TASK.instruction, input=text, focus=focus + "\n" if focus else ""))
    return out


CORPUS = ToyCorpus("focus", vocabulary, pretraining_texts, split_punctuation=True)
