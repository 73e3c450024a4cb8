"""Judges of the benchmark's attributes, independent of the training texts.

* ``sentiment``: VADER's compound score in [-1, 1] (``vaderSentiment``, whose lexicon ships in its
  wheel; nothing is downloaded).
* ``food``: food words per 10 words of the text, from ``FOOD_WORDS``. The list was written for the
  judge, apart from the training texts (``corpus``), as the words a reader would take as talk of food;
  it is matched on lower-cased word forms with a plural ``s``/``es`` stripped.
* ``space``: night-sky and spaceflight words per 10 words, from ``SPACE_WORDS``, written the same way.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import re
from functools import lru_cache
from pathlib import Path

FOOD_WORDS = frozenset("""
apple apricot artichoke asparagus avocado bacon bagel baguette bake baked baker bakery baking banana barbecue
basil bean beef beer berry biscuit blueberry boil boiled bread breakfast brisket broccoli broth brownie brunch
burger burrito butter cabbage cafe cake candy carrot casserole cereal cheddar cheese cheesecake chef cherry
chicken chili chips chocolate chop chowder cinnamon coffee cook cooked cooking cookie corn cream crepe croissant
crust cucumber cupcake curry custard dessert diner dinner dish dough doughnut dumpling eat eaten eating egg
espresso feast fillet flour food fried fries fruit fry garlic ginger grill grilled ham herb honey hummus icing
jam juice kebab ketchup kitchen lamb lasagna lemon lettuce lime lunch mango margarine mayonnaise meal meat
melon menu milk mint muffin mushroom mustard noodle nut oat oatmeal olive omelette onion orange oven pancake
pantry pasta pastry peach peanut pear pepper pickle pie pizza plum pork porridge potato pudding pumpkin recipe
restaurant rice roast roasted salad salami salmon salt sandwich sauce sausage seafood shrimp snack soup
spaghetti spice spinach steak stew strawberry sugar supper sushi sweet taco tart tea toast tofu tomato tuna
turkey vanilla vegetable vinegar waffle wine yogurt zucchini ate bite bites chew drink drank sip tasty
delicious flavor flavour taste tasted dine dined dining
""".split())

# Written for the judge, apart from the training texts: words a reader takes as talk of the night sky or
# spaceflight. Words with everyday senses the other topics use (sun, sky, star, launch, mission,
# station, space alone) are left out.
SPACE_WORDS = frozenset("""
astronaut astronauts astronomy astronomer astronomers astronomical asteroid asteroids astrophysics aurora
auroras booster capsule comet comets constellation constellations cosmic cosmonaut cosmos crater craters
eclipse eclipses exoplanet galaxies galaxy gravity jupiter lunar mars mercury meteor meteorite meteors
milky moon moons nasa nebula neptune observatory orbit orbital orbiting orbits planet planetarium planetary
planets pluto probe rocket rockets satellite satellites saturn solar spacecraft spaceflight spaceport
spacesuit spacewalk stargazing starlight supernova telescope telescopes universe uranus venus zodiac
""".split())

_WORD = re.compile(r"[a-z]+")


def _stem(word: str) -> str:
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in FOOD_WORDS:
            return word[: -len(suffix)]
    return word


def _per_ten_words(texts: list[str], words: frozenset, stem) -> list[float]:
    out = []
    for t in texts:
        found = _WORD.findall(t.lower())
        out.append(10.0 * sum(stem(w) in words for w in found) / len(found) if found else 0.0)
    return out


def food(texts: list[str]) -> list[float]:
    """Food words per 10 words of each text (0 for an empty text)."""
    return _per_ten_words(texts, FOOD_WORDS, _stem)


def space(texts: list[str]) -> list[float]:
    """Night-sky and spaceflight words per 10 words of each text (0 for an empty text); the list holds
    its plurals itself, so no stemming."""
    return _per_ten_words(texts, SPACE_WORDS, lambda w: w)


@lru_cache(maxsize=1)
def _vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        raise ValueError("the sentiment judge needs vaderSentiment (pip install vaderSentiment, or "
                         "steerkit[real])") from None
    return SentimentIntensityAnalyzer()


def sentiment(texts: list[str]) -> list[float]:
    """VADER's compound sentiment of each text, in [-1, 1]."""
    judge = _vader()
    return [float(judge.polarity_scores(t)["compound"]) for t in texts]


JUDGES = {"sentiment": sentiment, "food": food, "space": space}


def load_judge(spec: str, where: str = "--judge") -> tuple[str, object]:
    """``NAME=module:function`` (or ``NAME=path/to/file.py:function``) as (NAME, the callable). The
    callable takes a list of texts and returns one number per text, higher meaning more of the
    attribute; it is tried once on two texts here, so a judge that cannot score fails before a model loads."""
    name, eq, target = spec.partition("=")
    module_name, colon, function = target.rpartition(":")
    if not eq or not name or not colon or not module_name or not function:
        raise ValueError(f"{where}: expected NAME=module:function (e.g. formality=my_judges:formality), got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"{where}: no file at {path}")
            loader = importlib.util.spec_from_file_location(f"steerkit_judge_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{where}: cannot import {module_name!r} for judge {name!r}: {e}") from None
    judge = getattr(module, function, None)
    if not callable(judge):
        raise ValueError(f"{where}: {module_name} has no function {function!r}")
    check_judge(name, judge, where)
    return name, judge


def check_judge(name: str, judge, where: str = "judges") -> None:
    """A judge scores a list of texts with one finite number each."""
    probe = ["The soup was lovely and warm.", "The train leaves at noon."]
    try:
        scores = list(judge(probe))
    except Exception as e:  # noqa: BLE001  (the user's code: say what it raised, in one line)
        raise ValueError(f"{where}: judge {name!r} failed on two sample texts: {type(e).__name__}: {e}") from None
    if len(scores) != len(probe) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                            and math.isfinite(x) for x in scores):
        raise ValueError(f"{where}: judge {name!r} must return one finite number per text; for two texts it "
                         f"returned {scores!r}")


def check_attributes(attributes, judges: dict, methods=()) -> None:
    """Every attribute of the data has a judge (and, where prompting is compared, an instruction)."""
    from .methods import PROMPTS

    missing = [a for a in attributes if a not in judges]
    if missing:
        raise ValueError(f"data: no judge for attribute(s) {', '.join(missing)}; judges exist for "
                         f"{', '.join(judges)} (bring one with --judge NAME=module:function)")
    if "prompt" in methods and any(a not in PROMPTS for a in attributes):
        raise ValueError(f"methods: 'prompt' has instructions for {', '.join(PROMPTS)} only; leave it out "
                         "(--methods mean_diff probe mat mat_paper) to benchmark other attributes")
