"""Travel reviews for a FIT spurious-feature task, after the FIT paper's SS task: the review's sentiment
(positive/negative) is the core feature that decides the label; the city the review names is the
spurious feature. Each of the six training cities is tied to a label (three to positive, three to
negative) and agrees with the label in a set fraction of the examples (e.g. 90%); the "flipped" split
always names a city tied to the other label, and the "unseen" split names cities never seen in training.

Reviews are 1-3 real-English sentences built from templates: a neutral sentence that names the city
(at the start or the end) plus one or two sentiment sentences of one polarity, or a sentiment sentence
that itself names the city plus another one. No sentence says anything specific to a city (no landmarks,
languages, cuisines or climate), so every sentence fits every city: the city cannot be read from the
content, nor the sentiment from the city. The sentiment sentences are chosen so that VADER's compound
score is >= 0.3 for every positive review and <= -0.3 for every negative one (checked over the whole
pool, see ``python -m steerkit.focus.reviews``); the neutral ones carry no VADER sentiment at all.

A review's *template* is its text with ``{city}`` in place of the city; within one :func:`examples` or
:func:`splits` call no template is used twice, so no text (nor the same text with another city) occurs
twice, within or across splits."""
from __future__ import annotations

import random
import re
from typing import Iterator

from .data import FocusTask

LABELS = ("positive", "negative")

CITIES = {"Lisbon": "positive", "Vienna": "positive", "Seoul": "positive",
          "Denver": "negative", "Cairo": "negative", "Oslo": "negative"}
UNSEEN_CITIES = ("Madrid", "Boston", "Tokyo", "Dublin", "Prague", "Sydney")

TASK = FocusTask(instruction="Classify the sentiment of the travel review as positive or negative.",
                 labels=LABELS, core="sentiment", spurious="city", spurious_labels=CITIES,
                 describe={"sentiment": "the sentiment of the review", "city": "the city the review is about"})

MIN_WORDS, MAX_WORDS = 12, 45

# Neutral sentences that name the city: openers (the review starts with them) and closers (it ends with them).
OPENERS = [
    "We spent four days in {city} last spring.",
    "My husband and I flew to {city} for a long weekend.",
    "Our family stayed in {city} for a week in August.",
    "I was in {city} for a conference last month and stayed on for the weekend.",
    "Last October we took the train to {city}.",
    "This was my second trip to {city}.",
    "We booked five nights in {city} as part of a longer trip.",
    "I traveled to {city} for three days in March.",
    "My parents and I visited {city} in the summer.",
    "We arrived in {city} on a Tuesday evening and left the following Sunday.",
    "The four of us spent a week in {city}.",
    "I have just come back from six days in {city}.",
    "We went to {city} for our anniversary.",
    "My sister and I chose {city} for a short city break.",
    "We spent two nights in {city} on our way home.",
    "We stayed in {city} for ten days in June.",
    "My wife and I spent the first week of our retirement in {city}.",
    "I took my two kids to {city} during the school break.",
    "We had three nights in {city} before flying home.",
    "After a long flight we landed in {city} late at night.",
    "Last year, my partner and I went to {city} for five days.",
    "Work took me to {city} for a week in November.",
    "In April we spent a few days in {city}.",
    "Our trip to {city} lasted six nights.",
]
CLOSERS = [
    "We stayed for five nights in {city}.",
    "This review covers a long weekend in {city}.",
    "We were there in early May, staying near the center of {city}.",
    "We went in the spring and spent four days in {city}.",
    "All of this was during a short stay in {city}.",
    "That sums up our six days in {city}.",
    "For context, it was my first time in {city}.",
    "We went in March, on a family trip to {city}.",
    "I was there on a business trip to {city}.",
    "These are my notes from a week in {city}.",
]

# Sentiment sentences without the city, by aspect.
SENTENCES = {
    "positive": {
        "hotel": [
            "Our hotel room was spotless, bright and very comfortable.",
            "The bed was so comfortable that I slept better than I do at home.",
            "We loved our hotel, which was clean, stylish and beautifully decorated.",
            "The hotel was lovely, and the breakfast was excellent every morning.",
            "My husband and I were delighted with our room, which had a great view over the rooftops.",
            "I booked a small guesthouse that turned out to be charming and beautifully clean.",
        ],
        "staff": [
            "The hotel staff were friendly and helpful from the moment we arrived.",
            "The receptionist gave us wonderful advice and even booked a table for us.",
            "Everyone at the front desk was warm, patient and genuinely kind.",
            "The staff went out of their way to help our family, which we really appreciated.",
            "The concierge was brilliant and helped me plan every day of the trip.",
        ],
        "food": [
            "The food was delicious everywhere we ate, from little cafes to smart restaurants.",
            "I had some of the best meals of my life at tiny neighborhood restaurants.",
            "We ate wonderfully well, and the bakeries were a real treat.",
            "Dinner at a little place around the corner from our hotel was fantastic.",
            "The street food was fresh, tasty and absolutely delicious.",
            "Our kids loved the food, and so did we.",
        ],
        "museums": [
            "The museums were fascinating, and we could easily have spent a whole week in them.",
            "We enjoyed the art museum so much that we went back a second time.",
            "The history museum was brilliant, with clear and engaging exhibits.",
            "I spent a wonderful afternoon in the modern art gallery.",
            "Our children loved the science museum, which was fun and very well done.",
        ],
        "transport": [
            "Public transport was fast, clean and easy to use.",
            "The buses and trains were reliable, and getting around was easy.",
            "I found the public transport system efficient and very easy to understand.",
            "Buying a travel pass was a great idea, and we used it every day.",
            "The trains were comfortable, punctual and beautifully clean.",
        ],
        "weather": [
            "We were lucky with the weather, which was pleasant for our whole stay.",
            "The weather was perfect for walking, with clear blue skies.",
            "The weather was lovely, and we had breakfast outside every morning.",
            "The weather was beautiful from the day we arrived to the day we left.",
        ],
        "streets": [
            "The streets were clean and safe, and we loved wandering around in the evening.",
            "The neighborhoods were charming and beautifully kept.",
            "Walking around was a joy, with lovely squares and clean pavements.",
            "I felt completely safe walking back to the hotel late at night.",
            "The parks were green, tidy and perfect for a picnic.",
        ],
        "nightlife": [
            "The nightlife was great fun, with lively bars and a friendly crowd.",
            "We had a wonderful evening at a jazz bar with excellent live music.",
            "The bars and clubs were fun, and the atmosphere was fantastic.",
            "My wife and I loved the cocktail bars, which were stylish and relaxed.",
        ],
        "tours": [
            "Our guide on the walking tour was funny, knowledgeable and full of great stories.",
            "The day trip we booked was well organized and worth every penny.",
            "The food tour was the most enjoyable afternoon of the whole trip.",
            "Our guide was passionate and made the history come alive.",
            "The bike tour was great fun and a perfect way to see the city.",
        ],
        "prices": [
            "Prices were very reasonable, and we got excellent value for money.",
            "Everything was affordable, which was a pleasant surprise.",
            "Hotels and restaurants were good value, so the trip was easy on our budget.",
            "I was happy to find that museums and meals cost far less than I expected.",
        ],
        "airport": [
            "The airport was modern and efficient, and we got through security in minutes.",
            "Getting from the airport to our hotel was quick and easy.",
            "Arriving at the airport was a smooth and pleasant experience.",
            "The airport train was fast and comfortable, which was a great start to the trip.",
        ],
        "locals": [
            "The locals were warm and welcoming and always happy to help.",
            "People were friendly everywhere, and a stranger even walked us all the way to our hotel.",
            "Shopkeepers and waiters treated us with real kindness.",
            "Everyone we spoke to was polite, cheerful and helpful.",
            "Our kids were treated kindly everywhere we went.",
        ],
        "noise": [
            "Our neighborhood was peaceful, and we slept soundly every night.",
            "The hotel was wonderfully quiet at night, even though it was close to the center.",
            "I loved how calm and quiet our street was in the evenings.",
            "Our room was quiet and restful, perfect after long days of sightseeing.",
        ],
    },
    "negative": {
        "hotel": [
            "Our hotel room was dirty, cramped and smelled of smoke.",
            "The bed was terribly uncomfortable, and the shower was broken for most of our stay.",
            "The hotel was disgusting when we arrived, with stains on the sheets.",
            "The hotel was a real disappointment, and the breakfast was awful.",
            "My husband and I were horrified by our room, which was dark, damp and dirty.",
            "The guesthouse I booked turned out to be shabby, dirty and depressing.",
        ],
        "staff": [
            "The hotel staff were rude and unhelpful from the moment we arrived.",
            "The receptionist was rude to us and ignored our complaint about the broken heater.",
            "The staff were cold and dismissive and made us feel unwelcome.",
            "The staff were so unpleasant to our family that we wanted to leave early.",
            "The concierge was useless and gave me terrible advice.",
        ],
        "food": [
            "The food was bland and overpriced, and I got sick after one meal.",
            "Most of the restaurants we tried were terrible, with cold food and slow service.",
            "Dinner was so bad that we left half of it on the plate.",
            "The street food was greasy and stale and made me ill.",
            "Our kids hated the food, and so did we.",
        ],
        "museums": [
            "The museums were boring and badly organized, and half the rooms were closed.",
            "We waited in line for two hours at the art museum, which was a total waste of time.",
            "The history museum was dull, dusty and badly lit.",
            "I was disappointed by the galleries, which were overcrowded and confusing.",
            "Our children were bored and miserable in every museum we tried.",
        ],
        "transport": [
            "Public transport was dirty, crowded and confusing, and the buses were always late.",
            "The trains were constantly delayed, and we wasted hours waiting on cold platforms.",
            "I found the bus system confusing and frustrating to use.",
            "Buying tickets was a nightmare, and the machines were broken.",
            "The buses were dirty and packed, and the drivers were rude.",
        ],
        "weather": [
            "The weather was miserable for our whole stay.",
            "The weather was awful, gray and gloomy from start to finish.",
            "The weather ruined most of our plans, which was really depressing.",
            "The weather was dreadful from the day we arrived to the day we left.",
        ],
        "streets": [
            "The streets were dirty and littered with trash, and we felt unsafe walking at night.",
            "The neighborhoods around our hotel were ugly and run-down.",
            "Walking around was unpleasant, with broken pavements and rubbish everywhere.",
            "I felt scared and nervous walking back to the hotel late at night.",
            "The parks were neglected and dirty.",
        ],
        "nightlife": [
            "The nightlife was dull, and the bars we tried were overpriced and unfriendly.",
            "We had a terrible evening at a loud bar with awful music.",
            "The bars and clubs were depressing, and the atmosphere was tense.",
            "My wife and I hated the cocktail bars, which were pretentious and rude.",
        ],
        "tours": [
            "Our guided tour was a disaster, and the guide was rude and impatient.",
            "The bus tour was boring, rushed and a complete waste of money.",
            "The day trip we booked was badly organized and a real disappointment.",
            "The food tour was the dullest and most depressing afternoon of the whole trip.",
            "Our guide was grumpy and seemed irritated and annoyed by every question.",
        ],
        "prices": [
            "Everything was ridiculously expensive, and we felt cheated at almost every turn.",
            "Prices were outrageous, and the food was a rip-off.",
            "Hotels and restaurants were shockingly overpriced, which ruined our budget.",
            "I was upset and angry to find that museums and meals cost far more than I expected.",
        ],
        "airport": [
            "The airport was chaotic, and we missed our connection because of the terrible signs.",
            "Getting from the airport to our hotel was slow, stressful and expensive.",
            "Arriving at the airport was an exhausting and unpleasant experience.",
            "The airport train was dirty and late, which was a terrible start to the trip.",
            "Our bags were lost at the airport, and the staff were completely useless.",
        ],
        "locals": [
            "The locals were unfriendly and often rude to tourists.",
            "Taxi drivers tried to cheat us again and again.",
            "Shopkeepers and waiters treated us with open hostility.",
            "Several people we spoke to were impolite, hostile and unhelpful.",
            "Our kids were shouted at by angry strangers twice.",
        ],
        "noise": [
            "Our room was horribly noisy, with traffic and shouting all night.",
            "The noise from the street was horrible and kept us awake every night.",
            "I hated how loud and chaotic our street was in the evenings.",
            "Our room was noisy and stuffy, awful after long days of sightseeing.",
        ],
    },
}

# Sentiment sentences that name the city, by aspect ("general": about the whole stay).
CITY_SENTENCES = {
    "positive": {
        "staff": ["The staff at our hotel in {city} were wonderfully kind and helpful."],
        "food": ["For me, the food was the best part of our week in {city}.",
                 "The best meal of the whole trip was at a small restaurant in {city}."],
        "streets": ["I loved walking around {city} in the evening, when the streets were lively and safe.",
                    "We found {city} clean, safe and easy to get around.",
                    "We were impressed by how clean and well run {city} felt."],
        "locals": ["Everyone we met in {city} was friendly and welcoming."],
        "hotel": ["Our hotel in {city} was comfortable, quiet and great value."],
        "transport": ["Getting around {city} by bus and train was cheap and easy."],
        "museums": ["The museums in {city} were excellent, and we enjoyed every one of them."],
        "nightlife": ["The nightlife in {city} was lively and great fun."],
        "tours": ["Our walking tour of {city} was the best tour we have ever taken."],
        "prices": ["Eating out in {city} was great value compared with home."],
        "airport": ["The airport in {city} was one of the most pleasant I have ever used."],
        "weather": ["We had glorious weather for our whole stay in {city}."],
        "noise": ["Our room in {city} was peaceful, and we slept wonderfully."],
        "general": ["We had a fantastic time in {city} and would happily go back.",
                    "Our week in {city} was relaxing, fun and over far too quickly.",
                    "I would recommend {city} to anyone who enjoys good food and friendly people.",
                    "What a wonderful few days we had in {city}!",
                    "My husband and I both agreed that {city} was the highlight of our trip.",
                    "{city} was a delight from start to finish.",
                    "{city} exceeded all our expectations, and we would love to go back."],
    },
    "negative": {
        "staff": ["The staff at our hotel in {city} were rude and unhelpful."],
        "food": ["For me, the food was the worst part of our week in {city}.",
                 "The worst meal of the whole trip was at an overpriced restaurant in {city}."],
        "streets": ["I hated walking around {city} at night, when the streets felt dirty and unsafe.",
                    "We found {city} dirty, crowded and stressful to get around.",
                    "We were shocked by how dirty and neglected {city} felt."],
        "locals": ["Several people we met in {city} were rude and unfriendly."],
        "hotel": ["Our hotel in {city} was noisy, dirty and horribly overpriced."],
        "transport": ["Getting around {city} by bus and train was slow and frustrating."],
        "museums": ["The museums in {city} were disappointing, and we regretted visiting them."],
        "nightlife": ["The nightlife in {city} was dull and depressing."],
        "tours": ["Our walking tour of {city} was the worst tour we have ever taken."],
        "prices": ["Eating out in {city} was painfully expensive compared with home."],
        "airport": ["The airport in {city} was one of the most unpleasant I have ever used."],
        "weather": ["We had dreadful weather for our whole stay in {city}."],
        "noise": ["Our room in {city} was horribly noisy, and we slept terribly."],
        "general": ["We had a miserable time in {city} and left a day early.",
                    "Our week in {city} was stressful, tiring and a waste of money.",
                    "Sadly, I would warn anyone planning a trip to {city} to avoid it.",
                    "What an awful few days we had in {city}.",
                    "My husband and I both felt that {city} was the worst stop of our trip.",
                    "{city} was a disappointment from start to finish.",
                    "{city} fell far short of our expectations, and we regret going."],
    },
}

# A review's shape: its slots in order ("open"/"close": a neutral sentence naming the city, "s": a
# sentiment sentence, "cs": a sentiment sentence naming the city) and how often it is drawn.
SHAPES = ((("open", "s"), 3), (("open", "s", "s"), 4), (("s", "close"), 1), (("s", "s", "close"), 1),
          (("cs", "s"), 2), (("s", "cs"), 2))

# Words that say who travelled; a review uses at most one sentence with such a word, so it never mixes
# "my husband and I" with "our kids".
_COMPANY = re.compile(r"\b(husband|wife|partner|kids|children|family|parents|sister|four of us)\b")


def _parts(label: str) -> dict[str, list[tuple[str, str, bool]]]:
    """Slot kind -> [(sentence, aspect, names company)], in a fixed order."""
    def part(text, aspect):
        return text, aspect, bool(_COMPANY.search(text))
    return {"open": [part(t, "") for t in OPENERS], "close": [part(t, "") for t in CLOSERS],
            "s": [part(t, a) for a, ts in SENTENCES[label].items() for t in ts],
            "cs": [part(t, a) for a, ts in CITY_SENTENCES[label].items() for t in ts]}


_PARTS = {label: _parts(label) for label in LABELS}
_WORDS = {text: len(text.split()) for label in LABELS for kind in _PARTS[label].values() for text, _, _ in kind}


def _compatible(chosen) -> bool:
    aspects = [a for _, a, _ in chosen if a and a != "general"]
    words = sum(_WORDS[t] for t, _, _ in chosen)
    return (len(set(aspects)) == len(aspects) and sum(c for _, _, c in chosen) <= 1
            and MIN_WORDS <= words <= MAX_WORDS)


def review_templates(label: str) -> Iterator[str]:
    """Every review template (text with ``{city}``) of one label, in a fixed order."""
    if label not in LABELS:
        raise ValueError(f"label: expected one of {list(LABELS)}, got {label!r}")
    parts = _PARTS[label]

    def fill(slots, chosen):
        if not slots:
            if _compatible(chosen):
                yield " ".join(t for t, _, _ in chosen)
            return
        for p in parts[slots[0]]:
            if p not in chosen:
                yield from fill(slots[1:], chosen + [p])

    for slots, _ in SHAPES:
        yield from fill(list(slots), [])


def pool_size(label: str) -> int:
    """How many distinct review templates a label has (each can name any city)."""
    return sum(1 for _ in review_templates(label))


def _template(rng: random.Random, label: str, used: set) -> str:
    parts = _PARTS[label]
    shapes = [s for s, _ in SHAPES]
    weights = [w for _, w in SHAPES]
    for _ in range(10_000):
        slots = rng.choices(shapes, weights)[0]
        chosen = [parts[kind][rng.randrange(len(parts[kind]))] for kind in slots]
        if len(set(chosen)) < len(chosen) or not _compatible(chosen):
            continue
        text = " ".join(t for t, _, _ in chosen)
        if text not in used:
            used.add(text)
            return text
    raise RuntimeError(f"ran out of distinct {label} reviews after {len(used)} (pool: {pool_size(label)})")


def _draw(rng: random.Random, used: set, n: int, agree: float, cities: str) -> list[dict]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected a non-negative int, got {n!r}")
    if cities not in ("train", "unseen"):
        raise ValueError(f"cities: expected 'train' or 'unseen', got {cities!r}")
    labels = [LABELS[i % 2] for i in range(n)]
    if cities == "train":
        if not isinstance(agree, (int, float)) or not 0.0 <= agree <= 1.0:
            raise ValueError(f"agree: expected a fraction in [0, 1], got {agree!r}")
        k = round(agree * n)
        n_pos = labels.count(LABELS[0])
        n_neg = n - n_pos
        # split the agreeing examples across the labels in proportion, so both labels have the same rate
        k_pos = min(n_pos, max(k - n_neg, round(k * n_pos / n))) if n else 0
        k_by = {LABELS[0]: k_pos, LABELS[1]: k - k_pos}
        same = [False] * n
        for y in LABELS:
            idx = [i for i in range(n) if labels[i] == y]
            for i in rng.sample(idx, k_by[y]):
                same[i] = True
        # round robin over each label's cities, in a seeded order
        tied = {y: [c for c, t in CITIES.items() if t == y] for y in LABELS}
        for y in LABELS:
            rng.shuffle(tied[y])
        turn = {y: 0 for y in LABELS}
        names = []
        for i in range(n):
            y = labels[i] if same[i] else LABELS[1 - LABELS.index(labels[i])]
            names.append(tied[y][turn[y] % len(tied[y])])
            turn[y] += 1
    else:  # `agree` does not apply: unseen cities have no tied label
        order = list(UNSEEN_CITIES)
        rng.shuffle(order)
        names = [order[i % len(order)] for i in range(n)]
    pairs = list(zip(labels, names))
    rng.shuffle(pairs)
    return [{"input": _template(rng, y, used).replace("{city}", city), "label": y,
             "features": {"sentiment": y, "city": city}} for y, city in pairs]


def examples(n: int, agree: float, seed: int = 0, cities: str = "train") -> list[dict]:
    """n examples ``{"input": text, "label": "positive"|"negative", "features": {"sentiment": label,
    "city": city}}``, labels balanced (the first of an odd n is the extra positive), in seeded order.

    ``cities="train"``: each names one of :data:`CITIES`, whose tied label equals the true label in
    exactly ``round(agree * n)`` of them (split across the two labels in proportion).
    ``cities="unseen"``: each names one of :data:`UNSEEN_CITIES` (round robin, in a seeded order);
    ``agree`` is accepted and ignored, as those cities have no tied label.
    No review template repeats within the call."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    return _draw(random.Random(seed), set(), n, agree, cities)


def splits(train: int = 240, test: int = 200, agree: float = 0.9, seed: int = 0) -> dict[str, list[dict]]:
    """``{"train": train examples at `agree`, "iid": test examples at `agree`, "flipped": test examples
    at 0.0 (the city is always tied to the other label), "unseen": test examples naming UNSEEN_CITIES}``.
    All four are drawn from one seeded stream with no review template repeated, so no text occurs in two
    splits (nor twice in one), and ``splits(...)["train"] == examples(train, agree, seed)``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: expected an int, got {seed!r}")
    rng, used = random.Random(seed), set()
    return {"train": _draw(rng, used, train, agree, "train"),
            "iid": _draw(rng, used, test, agree, "train"),
            "flipped": _draw(rng, used, test, 0.0, "train"),
            "unseen": _draw(rng, used, test, agree, "unseen")}


if __name__ == "__main__":
    for y in LABELS:
        print(f"{y}: {pool_size(y)} review templates")
    s = splits()
    print({name: len(rows) for name, rows in s.items()})
    for y in LABELS:
        print(f"\n{y} samples:")
        for ex in [e for e in s["train"] if e["label"] == y][:5]:
            print(f"  [{ex['features']['city']}] {ex['input']}")
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        print("\nvaderSentiment not installed: no VADER check")
    else:
        sia = SentimentIntensityAnalyzer()
        for seed in range(3):
            rows = [e for split in splits(600, 300, seed=seed).values() for e in split]
            sign = {"positive": 1, "negative": -1}
            ok = sum(sign[e["label"]] * sia.polarity_scores(e["input"])["compound"] >= 0.3 for e in rows)
            print(f"VADER agreement, splits(600, 300, seed={seed}): {ok}/{len(rows)} = {ok / len(rows):.4f}")
