"""The travel-review FIT task (steerkit.focus.reviews): seeded, balanced, exact spurious rates, one city
per review, disjoint splits, accepted by the focus data loaders, and sentiment that VADER agrees with."""
import re
from collections import Counter

import pytest

from steerkit.focus import data
from steerkit.focus import reviews as R

SPLIT_NAMES = ("train", "iid", "flipped", "unseen")


def cities_named(text, names):
    return {c: len(re.findall(rf"\b{re.escape(c)}\b", text)) for c in names if re.search(rf"\b{re.escape(c)}\b", text)}


def test_city_lists():
    assert len(R.CITIES) == 6 and len(R.UNSEEN_CITIES) == 6 and len(set(R.UNSEEN_CITIES)) == 6
    assert Counter(R.CITIES.values()) == {"positive": 3, "negative": 3}
    assert not set(R.CITIES) & set(R.UNSEEN_CITIES)
    assert R.TASK.spurious_labels == R.CITIES and R.TASK.labels == ("positive", "negative")
    assert (R.TASK.core, R.TASK.spurious) == ("sentiment", "city")


def test_examples_are_deterministic_and_seeded():
    assert R.examples(100, 0.9, seed=3) == R.examples(100, 0.9, seed=3)
    assert R.examples(100, 0.9, seed=3) != R.examples(100, 0.9, seed=4)
    assert R.splits(seed=1) == R.splits(seed=1)
    assert R.splits(seed=1)["train"] == R.examples(240, 0.9, seed=1)


@pytest.mark.parametrize("n", [240, 200, 101, 7])
@pytest.mark.parametrize("agree", [0.9, 0.0, 1.0, 0.5])
def test_balanced_labels_and_exact_agreement(n, agree):
    ex = R.examples(n, agree, seed=2)
    assert len(ex) == n
    counts = Counter(e["label"] for e in ex)
    assert abs(counts["positive"] - counts["negative"]) <= 1
    same = sum(R.CITIES[e["features"]["city"]] == e["label"] for e in ex)
    assert same == round(agree * n)
    for e in ex:
        assert e["features"] == {"sentiment": e["label"], "city": e["features"]["city"]}
        assert e["label"] in ("positive", "negative")


def test_each_review_names_its_city_once_and_no_other():
    s = R.splits(600, 300, seed=0)
    every = list(R.CITIES) + list(R.UNSEEN_CITIES)
    for name, rows in s.items():
        allowed = set(R.UNSEEN_CITIES) if name == "unseen" else set(R.CITIES)
        for e in rows:
            city = e["features"]["city"]
            assert city in allowed, (name, city)
            assert cities_named(e["input"], every) == {city: 1}, e["input"]
            assert "{" not in e["input"] and "}" not in e["input"]
            assert R.MIN_WORDS <= len(e["input"].split()) <= R.MAX_WORDS, e["input"]
    # unseen cities are used round robin
    assert set(Counter(e["features"]["city"] for e in s["unseen"]).values()) == {50}


def test_split_sizes_rates_and_disjointness():
    for seed in range(5):
        s = R.splits(240, 200, seed=seed)
        assert tuple(s) == SPLIT_NAMES
        assert [len(s[k]) for k in SPLIT_NAMES] == [240, 200, 200, 200]
        texts = [e["input"] for k in SPLIT_NAMES for e in s[k]]
        assert len(set(texts)) == len(texts), seed
        # nor the same review with another city
        skeletons = [e["input"].replace(e["features"]["city"], "{city}") for k in SPLIT_NAMES for e in s[k]]
        assert len(set(skeletons)) == len(skeletons), seed
        assert sum(R.CITIES[e["features"]["city"]] == e["label"] for e in s["train"]) == 216
        assert sum(R.CITIES[e["features"]["city"]] == e["label"] for e in s["iid"]) == 180
        assert all(R.CITIES[e["features"]["city"]] != e["label"] for e in s["flipped"])
        for k in SPLIT_NAMES:
            c = Counter(e["label"] for e in s[k])
            assert c["positive"] == c["negative"], (seed, k)


def test_unseen_ignores_agree():
    assert R.examples(60, 0.9, seed=5, cities="unseen") == R.examples(60, 0.1, seed=5, cities="unseen")
    assert all(e["features"]["city"] in R.UNSEEN_CITIES for e in R.examples(60, 0.9, cities="unseen"))


def test_loaders_accept_the_examples_and_measure_the_rate():
    s = R.splits(240, 200, seed=0)
    for k, rate in (("train", 0.9), ("iid", 0.9), ("flipped", 0.0)):
        loaded = data.load_examples(s[k], R.TASK)
        assert len(loaded) == len(s[k])
        assert data.spurious_rate(s[k], R.TASK) == pytest.approx(rate)
    recs = data.build_focus_dataset(s["train"][:10], R.TASK, per_example="all")
    assert len(recs) == 10 * 7 and all(r.target in ("positive", "negative") for r in recs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="agree"):
        R.examples(10, 1.5)
    with pytest.raises(ValueError, match="cities"):
        R.examples(10, 0.9, cities="test")
    with pytest.raises(ValueError, match="non-negative"):
        R.examples(-1, 0.9)


def test_large_pool_per_label():
    for y in ("positive", "negative"):
        assert R.pool_size(y) >= 100_000
    big = R.examples(6000, 0.5, seed=0)
    per_label = Counter(e["label"] for e in {e["input"]: e for e in big}.values())
    assert per_label["positive"] >= 1000 and per_label["negative"] >= 1000
    assert R.splits(600, 300, seed=9)["unseen"]  # larger splits do not run out


def test_vader_agrees_with_every_label():
    vader = pytest.importorskip("vaderSentiment.vaderSentiment")
    sia = vader.SentimentIntensityAnalyzer()
    for seed in range(3):
        for k, rows in R.splits(600, 300, seed=seed).items():
            for e in rows:
                c = sia.polarity_scores(e["input"])["compound"]
                assert (c >= 0.3) if e["label"] == "positive" else (c <= -0.3), (seed, k, c, e["input"])


def test_neutral_sentences_carry_no_sentiment():
    vader = pytest.importorskip("vaderSentiment.vaderSentiment")
    sia = vader.SentimentIntensityAnalyzer()
    for t in R.OPENERS + R.CLOSERS:
        assert t.count("{city}") == 1
        assert abs(sia.polarity_scores(t.replace("{city}", "Vienna"))["compound"]) < 0.1, t
