"""Judges of the benchmark's attributes, independent of the training texts.

* ``sentiment``: VADER's compound score in [-1, 1] (``vaderSentiment``, whose lexicon ships in its
  wheel; nothing is downloaded).
* ``food``: food words per 10 words of the text, from ``FOOD_WORDS``. The list was written for the
  judge, apart from the training texts (``corpus``), as the words a reader would take as talk of food;
  it is matched on lower-cased word forms with a plural ``s``/``es`` stripped.
"""
from __future__ import annotations

import re
from functools import lru_cache

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

_WORD = re.compile(r"[a-z]+")


def _stem(word: str) -> str:
    for suffix in ("es", "s"):
        if word.endswith(suffix) and word[: -len(suffix)] in FOOD_WORDS:
            return word[: -len(suffix)]
    return word


def food(texts: list[str]) -> list[float]:
    """Food words per 10 words of each text (0 for an empty text)."""
    out = []
    for t in texts:
        words = _WORD.findall(t.lower())
        out.append(10.0 * sum(_stem(w) in FOOD_WORDS for w in words) / len(words) if words else 0.0)
    return out


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


JUDGES = {"sentiment": sentiment, "food": food}
