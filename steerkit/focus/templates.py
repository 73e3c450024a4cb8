"""Focus-instruction wordings. ``{C}`` and ``{S}`` stand for the descriptions of the core and the
spurious feature ("the sentiment", "the keyword"). Every instruction-carrying type has training
wordings and a disjoint set of held-out wordings, used only at test time to measure whether the
model follows instructions it has never seen."""
from __future__ import annotations

# the order is the paper's: the core family (target y) first, then the spurious family (target y_s)
FOCUS_TYPES = ("none", "focus_c", "ignore_s", "focus_c_ignore_s", "focus_s", "focus_s_ignore_c", "ignore_c")
CORE_FAMILY = ("none", "focus_c", "ignore_s", "focus_c_ignore_s")
SPURIOUS_FAMILY = ("focus_s", "focus_s_ignore_c", "ignore_c")
PRETTY = {"none": "none", "focus_c": "focus(C)", "ignore_s": "ignore(S)", "focus_c_ignore_s": "focus(C)∧ignore(S)",
          "focus_s": "focus(S)", "focus_s_ignore_c": "focus(S)∧ignore(C)", "ignore_c": "ignore(C)"}

_FOCUS = [
    "Focus on {X}.",
    "Base your answer only on {X}.",
    "Pay attention to {X} when you answer.",
    "Decide using {X}.",
    "Consider only {X}.",
    "Look at {X} to choose the answer.",
]
_IGNORE = [
    "Ignore {X}.",
    "Do not let {X} influence your answer.",
    "Disregard {X}.",
    "Pay no attention to {X}.",
    "Leave {X} out of your decision.",
    "Your answer must not depend on {X}.",
]
_FOCUS_HELD_OUT = ["Your answer should rest on {X} alone.", "Judge the input by {X}."]
_IGNORE_HELD_OUT = ["Set {X} aside.", "Treat {X} as irrelevant."]
_BOTH = [  # focus on F, ignore G, in one sentence
    "Focus on {F} and ignore {G}.",
    "Answer from {F}, not from {G}.",
]
_BOTH_HELD_OUT = ["Rely on {F} while overlooking {G}."]


def _one(wordings: list[str], feature: str) -> list[str]:
    return [w.replace("{X}", feature) for w in wordings]


def _both(focus: list[str], ignore: list[str], sentences: list[str], f: str, g: str) -> list[str]:
    joined = [a.replace("{X}", f) + " " + b.replace("{X}", g) for a, b in zip(focus, ignore[1:] + ignore[:1])]
    return [s.replace("{F}", f).replace("{G}", g) for s in sentences] + joined


def wordings(focus_type: str, held_out: bool = False) -> list[str]:
    """The wordings of one focus type, with ``{C}``/``{S}`` placeholders (``none`` has one: empty)."""
    if focus_type not in FOCUS_TYPES:
        raise ValueError(f"focus_type: unknown {focus_type!r}; expected one of {', '.join(FOCUS_TYPES)}")
    focus, ignore, both = ((_FOCUS_HELD_OUT, _IGNORE_HELD_OUT, _BOTH_HELD_OUT) if held_out
                           else (_FOCUS, _IGNORE, _BOTH))
    return {
        "none": [""],
        "focus_c": _one(focus, "{C}"),
        "ignore_s": _one(ignore, "{S}"),
        "focus_c_ignore_s": _both(focus, ignore, both, "{C}", "{S}"),
        "focus_s": _one(focus, "{S}"),
        "focus_s_ignore_c": _both(focus, ignore, both, "{S}", "{C}"),
        "ignore_c": _one(ignore, "{C}"),
    }[focus_type]


def render(wording: str, core: str, spurious: str) -> str:
    return wording.replace("{C}", core).replace("{S}", spurious)
