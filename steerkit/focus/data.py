"""Focus-instruction data (FIT): a task (instruction, labels, the core feature C whose value decides
the label, the spurious feature S whose values are each tied to a label), examples
``{input, label, features: {name: value}}``, and the prompts built from them: task instruction +
input + focus instruction, with target y for the core family and y_s for the spurious family."""
from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..jsonl import read_jsonl
from . import templates

PROMPT = "{instruction}\n\nInput: {input}\n\n{focus}Answer:"


@dataclass(frozen=True)
class FocusTask:
    """What the examples are about. ``spurious_labels`` maps each value of the spurious feature to the
    label it is correlated with in training (the y_s that focus(S) prompts ask for)."""
    instruction: str
    labels: tuple[str, ...]
    core: str
    spurious: str
    spurious_labels: Mapping[str, str]
    describe: Mapping[str, str] = field(default_factory=dict)  # feature -> phrase; default "the <name>"

    def __post_init__(self):
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "spurious_labels", dict(self.spurious_labels))
        object.__setattr__(self, "describe", dict(self.describe))
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError("instruction: expected the task instruction as a non-empty string")
        if len(self.labels) < 2 or any(not isinstance(x, str) or not x.strip() for x in self.labels):
            raise ValueError(f"labels: expected at least two non-empty label strings, got {list(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels: duplicates in {list(self.labels)}")
        for name, arg in ((self.core, "core"), (self.spurious, "spurious")):
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"{arg}: expected a feature name, got {name!r}")
        if self.core == self.spurious:
            raise ValueError(f"core and spurious: must be different features, both are {self.core!r}")
        if not self.spurious_labels:
            raise ValueError("spurious_labels: empty; map each value of the spurious feature to its tied label")
        bad = {v: y for v, y in self.spurious_labels.items() if y not in self.labels}
        if bad:
            raise ValueError(f"spurious_labels: {bad} tie values to labels outside {list(self.labels)}")

    def phrase(self, feature: str) -> str:
        return self.describe.get(feature, f"the {feature}")

    def to_dict(self) -> dict:
        return asdict(self) | {"labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "FocusTask":
        if not isinstance(d, Mapping):
            raise ValueError(f"task: expected a JSON object with instruction, labels, core, spurious, "
                             f"spurious_labels (and describe), got a {type(d).__name__}")
        missing = [k for k in ("instruction", "labels", "core", "spurious", "spurious_labels") if k not in d]
        if missing:
            raise ValueError(f"task: missing {', '.join(missing)}")
        return cls(**{k: d[k] for k in ("instruction", "labels", "core", "spurious", "spurious_labels", "describe")
                      if k in d})

    @classmethod
    def load(cls, path: str | Path) -> "FocusTask":
        """The task from a JSON file; every error names the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no task file at {path}")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}") from None


@dataclass(frozen=True)
class FocusExample:
    input: str
    label: str
    features: Mapping[str, str]


@dataclass
class FocusRecord:
    """One prompt and its target. ``prompt`` is ready to tokenize: when ``chat`` it is already rendered
    through the tokenizer's chat template (and carries its special tokens)."""
    id: int
    input: str
    focus_type: str
    wording: int  # index into templates.wordings(focus_type, held_out)
    held_out: bool
    prompt: str
    target: str
    label: str
    spurious_label: str
    choices: list[str]
    chat: bool = False
    answer_prefix: str = " "

    def completion(self, choice: str | None = None) -> str:
        return self.answer_prefix + (self.target if choice is None else choice)

    @property
    def features_disagree(self) -> bool:
        """Whether the two features call for different labels: only on such an example do the two families
        of focus types ask for different answers, so only there does following the instruction differ from
        answering by one feature."""
        return bool(self.spurious_label) and self.spurious_label != self.label

    def to_dict(self) -> dict:
        return asdict(self)


def load_examples(source: str | Path | Iterable, task: FocusTask | None = None,
                  require_tie: bool = True) -> list[FocusExample]:
    """Examples from a ``.jsonl`` path or an iterable of dicts / ``FocusExample``s; with a task, each
    is also checked against it (its label, the core and spurious features, and, with ``require_tie``,
    that the spurious value is tied to a label: the focus(S) family's target needs it, while a split of
    values never seen in training is scored under the core family only)."""
    where = str(source) if isinstance(source, (str, Path)) else "data"
    rows = read_jsonl(source) if isinstance(source, (str, Path)) else list(source)
    out = []
    for i, raw in enumerate(rows):
        if isinstance(raw, FocusExample):
            raw = {"input": raw.input, "label": raw.label, "features": raw.features}
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} example {i}: expected a dict with input, label, features; "
                             f"got {type(raw).__name__}")
        missing = [k for k in ("input", "label", "features") if k not in raw]
        if missing:
            raise ValueError(f"{where} example {i}: missing {', '.join(missing)} "
                             "(each example needs input, label, features)")
        if not isinstance(raw["input"], str) or not raw["input"].strip():
            raise ValueError(f"{where} example {i}: input must be a non-empty string")
        if not isinstance(raw["features"], Mapping):
            raise ValueError(f"{where} example {i}: features must be a dict of feature name -> value")
        ex = FocusExample(raw["input"], raw["label"], {str(k): v for k, v in raw["features"].items()})
        if task is not None:
            _check(i, ex, task, where, require_tie)
        out.append(ex)
    if not out:
        raise ValueError(f"{where}: no examples")
    return out


def _check(i: int, ex: FocusExample, task: FocusTask, where: str, require_tie: bool) -> None:
    if ex.label not in task.labels:
        raise ValueError(f"{where} example {i}: label {ex.label!r} is not one of the task's labels {list(task.labels)}")
    for name in (task.core, task.spurious):
        if name not in ex.features:
            raise ValueError(f"{where} example {i}: no feature {name!r} (it has {sorted(ex.features)}); "
                             f"the task's core feature is {task.core!r} and its spurious feature {task.spurious!r}")
    value = ex.features[task.spurious]
    if require_tie and value not in task.spurious_labels:
        raise ValueError(f"{where} example {i}: spurious feature {task.spurious!r} has value {value!r}, which has no "
                         f"tied label (task.spurious_labels covers {sorted(task.spurious_labels)}); such examples "
                         f"can be scored only under the core family ({', '.join(templates.CORE_FAMILY)})")


def spurious_label(ex: FocusExample, task: FocusTask) -> str:
    return task.spurious_labels[ex.features[task.spurious]]


def core_family_only(examples, task: FocusTask) -> bool:
    """Whether some example's spurious value has no tied label (values never seen in training), so the
    set can be scored under the core family of focus types only."""
    examples = load_examples(examples, task, require_tie=False)
    return any(e.features[task.spurious] not in task.spurious_labels for e in examples)


def _chat(tokenizer) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def make_prompt(task: FocusTask, text: str, focus: str, tokenizer=None) -> tuple[str, bool]:
    """(prompt, chat): the plain prompt, or the same text as a user turn of the tokenizer's chat
    template with the assistant turn opened, when the tokenizer has a template."""
    body = PROMPT.format(instruction=task.instruction.strip(), input=text.strip(),
                         focus=focus + "\n" if focus else "")
    if not _chat(tokenizer):
        return body, False
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": body}], tokenize=False,
                                             add_generation_prompt=True)
    return rendered, True


def build_focus_dataset(examples, task: FocusTask, focus_types: Sequence[str] = templates.FOCUS_TYPES,
                        per_example: int | str = 1, held_out_wordings: bool = False, tokenizer=None,
                        seed: int = 0, per_disagreeing: int | str | None = None) -> list[FocusRecord]:
    """Focus-instruction prompts from examples: ``per_example`` focus types drawn without replacement
    (seeded) from ``focus_types`` for every example, or ``"all"`` of them (for evaluation); each with a
    wording drawn from the training wordings, or from the held-out ones. ``per_disagreeing`` (default:
    ``per_example``) is the number for examples whose spurious label differs from the true label: only
    there do the two families of focus types ask for different answers, so they carry what focus
    training learns, while the others teach the task and the labels."""
    focus_types = list(focus_types)
    unknown = [t for t in focus_types if t not in templates.FOCUS_TYPES]
    if unknown or not focus_types:
        raise ValueError(f"focus_types: expected a non-empty subset of {', '.join(templates.FOCUS_TYPES)}, "
                         f"got {focus_types}")
    examples = load_examples(examples, task, require_tie=any(t in templates.SPURIOUS_FAMILY for t in focus_types))
    per_disagreeing = per_example if per_disagreeing is None else per_disagreeing
    for name, value in (("per_example", per_example), ("per_disagreeing", per_disagreeing)):
        if value != "all" and (not isinstance(value, int) or not 1 <= value <= len(focus_types)):
            raise ValueError(f"{name}: expected 'all' or an int in 1..{len(focus_types)}, got {value!r}")
    rng = random.Random(seed)
    core, spur = task.phrase(task.core), task.phrase(task.spurious)
    records = []
    for i, ex in enumerate(examples):
        y_s = task.spurious_labels.get(ex.features[task.spurious], "")  # "" only under core-family types
        n_types = per_example if y_s in ("", ex.label) else per_disagreeing
        chosen = focus_types if n_types == "all" else rng.sample(focus_types, n_types)
        for t in chosen:
            choices = templates.wordings(t, held_out_wordings)
            k = rng.randrange(len(choices))
            prompt, chat = make_prompt(task, ex.input, templates.render(choices[k], core, spur), tokenizer)
            target = ex.label if t in templates.CORE_FAMILY else y_s
            records.append(FocusRecord(i, ex.input, t, k, held_out_wordings, prompt, target, ex.label, y_s,
                                       list(task.labels), chat, "" if chat else " "))
    return records


def _names(value: str) -> re.Pattern:
    """The value as a whole word (or words) of a text."""
    return re.compile(rf"(?<!\w){re.escape(value)}(?!\w)")


def flipped_copies(records, task: FocusTask, tokenizer=None, seed: int = 0) -> list[FocusRecord]:
    """Copies of the examples behind ``records`` whose features disagree by construction: each example whose
    spurious value agrees with its label and is named in its input (as a whole word, the only value tied to
    that label named there) is copied once, naming instead a value tied to another label (a seeded choice),
    under every focus type among ``records``. Examples that do not name their value are left out, so a
    spurious feature the text does not spell out gives none.

    Why: at 90% agreement a validation split of two dozen examples holds two or three whose features
    disagree, the only ones on which the focus families ask for different answers, so a check of whether
    the spurious family is followed rests on half a dozen prompts (on Gemma 3 270M, seed 0, README: 0.67
    there where 40 flipped test reviews said 0.30). Copies cost no training example."""
    records = load_records(records)
    tied: dict[str, list[str]] = {}
    for value, label in task.spurious_labels.items():
        tied.setdefault(label, []).append(value)
    types = [t for t in templates.FOCUS_TYPES if any(r.focus_type == t for r in records)]
    rng = random.Random(seed)
    seen, copies = set(), []
    for r in records:
        if r.id in seen or r.features_disagree or r.spurious_label not in tied:
            continue
        seen.add(r.id)
        named = [v for v in tied[r.spurious_label] if _names(v).search(r.input)]
        others = sorted(v for label, values in tied.items() if label != r.label for v in values)
        if len(named) != 1 or not others:
            continue
        value = rng.choice(others)
        text = _names(named[0]).sub(lambda _: value, r.input)
        # the core value is read only by the check that it is there; the label stands for it
        copies.append(FocusExample(text, r.label, {task.core: r.label, task.spurious: value}))
    if not copies:
        return []
    return build_focus_dataset(copies, task, focus_types=types, per_example="all", tokenizer=tokenizer, seed=seed)


# fewest spurious-family prompts whose target (the spurious feature's label) differs from the true label:
# only those teach focus(S) to leave the core feature; the rest have the same answer either way.
# Measured on SmolLM2-135M-Instruct (README, Focus Instruction Tuning on a real model)
MIN_CONTRADICTING = 60


class FocusDataWarning(UserWarning):
    """Training records from which the spurious family of focus types cannot be learned."""


def spurious_family_problem(records) -> str | None:
    """Why the spurious family (focus(S), focus(S)∧ignore(C), ignore(C)) cannot be learned from these
    training records, or None. It needs prompts where the two features disagree: on the others the
    spurious label is the true label, so they teach nothing that the core family does not."""
    records = load_records(records)
    spurious = [r for r in records if r.focus_type in templates.SPURIOUS_FAMILY]
    if not spurious:
        return None
    against = sum(r.target != r.label for r in spurious)
    if against >= MIN_CONTRADICTING:
        return None
    return (f"only {against} of the {len(spurious)} spurious-family prompts (focus(S) and the like) have a "
            f"spurious label that differs from the true label, fewer than {MIN_CONTRADICTING}: the model will "
            f"likely answer by the core feature whatever the instruction says. Put every focus type on the "
            f"examples where they disagree (per_disagreeing='all'; --per-disagreeing 7), or add such examples")


def with_spurious_rate(examples, task: FocusTask, rate: float, n: int | None = None,
                       seed: int = 0) -> list[FocusExample]:
    """A subset of ``examples`` in which the spurious feature agrees with the label (y_s == y) in a
    fraction ``rate`` of them: 1.0 always, 0.0 never (the flipped split)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate: expected a fraction in [0, 1], got {rate}")
    examples = load_examples(examples, task)
    agree = [e for e in examples if spurious_label(e, task) == e.label]
    disagree = [e for e in examples if spurious_label(e, task) != e.label]
    # the largest n both pools can serve at this rate
    cap = min(len(agree) / rate if rate > 0 else float("inf"),
              len(disagree) / (1 - rate) if rate < 1 else float("inf"))
    n = int(cap) if n is None else n
    if n > cap or n < 1:
        raise ValueError(f"n: cannot draw {n} examples at spurious rate {rate} from {len(agree)} agreeing and "
                         f"{len(disagree)} disagreeing examples")
    rng = random.Random(seed)
    k = round(n * rate)
    picked = rng.sample(agree, k) + rng.sample(disagree, n - k)
    rng.shuffle(picked)
    return picked


def spurious_rate(examples, task: FocusTask) -> float:
    examples = load_examples(examples, task)
    return sum(spurious_label(e, task) == e.label for e in examples) / len(examples)


def save_jsonl(rows: Iterable, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            d = r.to_dict() if hasattr(r, "to_dict") else (asdict(r) if hasattr(r, "__dataclass_fields__") else r)
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return path


def load_records(source: str | Path | Iterable) -> list[FocusRecord]:
    """Focus records from JSONL (as written by ``save_jsonl``) or dicts; records pass through."""
    rows = read_jsonl(source) if isinstance(source, (str, Path)) else list(source)
    out = []
    names = set(FocusRecord.__dataclass_fields__)
    for i, r in enumerate(rows):
        if isinstance(r, FocusRecord):
            out.append(r)
            continue
        missing = [k for k in ("prompt", "target", "choices", "focus_type") if k not in r]
        if missing:
            raise ValueError(f"record {i}: missing {', '.join(missing)}")
        if r["target"] not in r["choices"]:
            raise ValueError(f"record {i}: target {r['target']!r} is not among its choices {r['choices']}")
        defaults = dict(id=i, input="", wording=-1, held_out=False, label=r["target"], spurious_label="")
        out.append(FocusRecord(**(defaults | {k: v for k, v in r.items() if k in names})))
    if not out:
        raise ValueError("no focus records")
    return out
