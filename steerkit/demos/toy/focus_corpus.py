"""The focus toy: a sentiment task whose label follows a core feature (the sentiment adjective) while a
spurious feature (the colour of the box the item came in) is tied to a label: blue to positive, red to
negative. The builder sets how often the two agree, so training can have the paper's 90% and a test
split can flip it. Reviews also carry neutral adjectives, so reading the sentiment takes knowing which
words carry it, while the colour is one fixed word in a fixed place: the easier cue to latch onto.

The base model stands in for the paper's instruction-tuned LLMs: it is pretrained as a *reader* that
answers a question about a review in its own words ("good"/"bad" for the tone, "blue"/"red" for the
box), asked through the focus wordings, with the colour independent of the tone. It has never seen the
labels "positive"/"negative", the task instruction with an answer, nor the colour-label tie: focus
tuning has to learn all three from the 90%-correlated data."""
from __future__ import annotations

import random
import re

from ...focus import templates
from ...focus.data import PROMPT, FocusRecord, FocusTask
from .model import ToyCorpus

POSITIVE = ["great", "lovely", "wonderful", "excellent", "superb", "delightful", "fantastic", "pleasant",
            "brilliant", "charming", "perfect", "splendid"]
NEGATIVE = ["awful", "terrible", "dreadful", "horrible", "poor", "disappointing", "nasty", "grim", "broken",
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
    words += list(READER_ANSWERS.values())
    words += _words(PROMPT.format(instruction=TASK.instruction, input="the was it came in a box", focus=""))
    words += _words(READER_INSTRUCTION)
    for t in templates.FOCUS_TYPES:
        for held in (False, True):
            for w in templates.wordings(t, held):
                words += _words(templates.render(w, TASK.phrase(TASK.core), TASK.phrase(TASK.spurious)))
    return list(dict.fromkeys(words))


READER_INSTRUCTION = "Read the review and answer the question."
READER_ANSWERS = {"positive": "good", "negative": "bad", "blue": "blue", "red": "red"}
SHORT = 0.3  # share of one-clause tone questions: without them the tone is learned late, or not at all


def pretraining_texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """The base model's pretraining: (prompt, answer) pairs, the loss on the answer only. A prompt
    asks through a focus wording (training wordings only: the held-out ones stay unseen) about the
    tone (core family: "good"/"bad") or the box colour (spurious family: the colour), the colour
    independent of the tone. A share are one-clause reviews asking for the tone: in full reviews the
    tone's two words are a weak signal among ~45 tokens, and a 4-layer model picks it up only after a
    long, seed-dependent plateau (measured without them: in 1 of 9 runs of 750-2000 steps). With them
    the plateau still decides 600-step runs: seeds 0 and 3 read both features, 1 and 2 only the
    colour, 4 only the tone; at 1000 steps with an untied head seeds 0-4 all read both
    (``demo_focus.base_reading`` checks it; tied, seed 4 stalls), which is why the demo's base trains
    for 1000."""
    rng = random.Random(seed)
    asking = [t for t in templates.FOCUS_TYPES if t != "none"]
    out = []
    for _ in range(n):
        positive = rng.random() < 0.5
        if rng.random() < SHORT:
            t = rng.choice([t for t in asking if t in templates.CORE_FAMILY])
            subject, word = rng.choice(SUBJECTS), rng.choice(POSITIVE if positive else NEGATIVE)
            out.append(_question(rng, t, f"the {subject} was {word} .", positive, None))
        else:
            t, colour = rng.choice(asking), rng.choice(list(COLOURS))
            out.append(_question(rng, t, review(rng, positive, colour), positive, colour))
    return out


def _question(rng: random.Random, focus_type: str, text: str, positive: bool, colour: str | None):
    """(prompt, answer) asking about ``text`` through a training wording of ``focus_type``; a text
    without a colour (a one-clause review) goes without the instruction paragraph."""
    focus = templates.render(rng.choice(templates.wordings(focus_type)), TASK.phrase(TASK.core),
                             TASK.phrase(TASK.spurious))
    template = PROMPT if colour else PROMPT.split("\n\n", 1)[1]
    prompt = template.format(instruction=READER_INSTRUCTION, input=text, focus=focus + "\n")
    asked = ("positive" if positive else "negative") if focus_type in templates.CORE_FAMILY else colour
    return prompt, READER_ANSWERS[asked]


def reader_questions(n: int, seed: int = 7) -> list[FocusRecord]:
    """n fresh full reviews, each asked once about its tone and once about its box colour, as the
    base was pretrained, the choices being the base's own answer words: ``focus.predict`` on them
    tells whether the base learned to read both features before any focus tuning."""
    rng = random.Random(seed)
    core = [t for t in templates.CORE_FAMILY if t != "none"]
    records = []
    for i in range(n):
        positive, colour = rng.random() < 0.5, rng.choice(list(COLOURS))
        text = review(rng, positive, colour)
        label = "positive" if positive else "negative"
        for t, choices in ((rng.choice(core), ("positive", "negative")),
                           (rng.choice(templates.SPURIOUS_FAMILY), tuple(COLOURS))):
            prompt, answer = _question(rng, t, text, positive, colour)
            records.append(FocusRecord(i, text, t, -1, False, prompt, answer, label, COLOURS[colour],
                                       [READER_ANSWERS[c] for c in choices]))
    return records


CORPUS = ToyCorpus("focus-reader", vocabulary, pretraining_texts, split_punctuation=True)
