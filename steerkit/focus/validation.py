"""What focus training checks on its validation records while it trains: the focus accuracy per type
at every evaluation (so the checkpoint kept, and early stopping, can follow what FIT is for rather than
the loss), and after training whether the spurious family was learned at all.

The validation loss falls as soon as the labels and the task are learned, while a family of focus types
can still be wrong: on Gemma 3 270M (README, seed 0) it was 0.34 nats after one epoch with every focus
type between 0.375 and 0.69 on the flipped split, and 0.17 with the spurious family at 0.00. The
accuracy says it; the loss does not."""
from __future__ import annotations

from dataclasses import dataclass

from . import templates
from .data import FocusRecord


@dataclass(frozen=True)
class ValidationFocus:
    """Focus accuracy of one evaluation: per focus type over every validation record, and per family over
    the records whose features disagree (where the instruction decides the answer)."""
    per_type: dict[str, float]
    core_disagreeing: float | None
    spurious_disagreeing: float | None
    disagreeing: int  # validation prompts whose features disagree

    @property
    def mean(self) -> float:
        """Mean over the focus types scored, each type weighted alike (as the demos report it)."""
        return sum(self.per_type.values()) / len(self.per_type)

    def metrics(self) -> dict[str, float]:
        out = {"focus_accuracy": self.mean} | {f"accuracy_{t}": a for t, a in self.per_type.items()}
        for name, v in (("focus_core_disagreeing", self.core_disagreeing),
                        ("focus_spurious_disagreeing", self.spurious_disagreeing)):
            if v is not None:
                out[name] = v
        return out


def _predictions(model, tok, records: list[FocusRecord], batch_size: int, max_length: int | None) -> list[str]:
    """Every record's prediction. Under several processes (torchrun, accelerate launch: the Trainer has
    joined them in a group) each scores every world-th record and they swap, so an evaluation costs each
    process its share rather than the whole set."""
    from .evaluation import predict

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return predict(model, tok, records, batch_size, max_length)
    rank, world = dist.get_rank(), dist.get_world_size()
    shares: list = [None] * world
    dist.all_gather_object(shares, predict(model, tok, records[rank::world], batch_size, max_length))
    out: list = [None] * len(records)
    for r, share in enumerate(shares):
        out[r::world] = share
    return out


def _family(r: FocusRecord) -> str:
    return "spurious" if r.focus_type in templates.SPURIOUS_FAMILY else "core"


def measure(model, tok, records: list[FocusRecord], batch_size: int = 32,
            max_length: int | None = None) -> ValidationFocus:
    from .evaluation import hits_by, rates

    predictions = _predictions(model, tok, records, batch_size, max_length)
    by_type = rates(hits_by(records, predictions))
    learning = [(r, p) for r, p in zip(records, predictions) if r.features_disagree]
    family = hits_by([r for r, _ in learning], [p for _, p in learning], key=_family)
    rate = rates(family)
    return ValidationFocus({t: by_type[t] for t in templates.FOCUS_TYPES if t in by_type},
                           rate.get("core"), rate.get("spurious"), len(learning))


# the score the Trainer keeps its best checkpoint by: focus accuracy first, the validation loss only to
# break ties (the loss term is below one accuracy step of any validation set under 10^4 prompts)
TIE_BREAK = 1e-6


def selection_score(accuracy: float, loss: float) -> float:
    return accuracy - TIE_BREAK * min(max(loss, 0.0), 99.0)


# below this, a family on the prompts whose features disagree is not following its instruction: with
# two labels, answering by the other feature scores 0 and guessing 0.5
FOLLOWED = 0.6


def problems(v: ValidationFocus, labels: int) -> list[str]:
    """Why the focus-tuned model does not do what FIT is for, judged on the validation records, with
    the likely cause; empty when it does."""
    out = []
    chance = 1.0 / labels
    core = [v.per_type[t] for t in templates.CORE_FAMILY if t in v.per_type]
    if core and max(core) <= chance + 0.1:
        out.append(f"the validation focus accuracy of the core family is at chance ({max(core):.2f} at best, "
                   f"chance {chance:.2f}): the labels or the task were not learned. Check that each label "
                   f"tokenizes the same after the prompt as in training, and try a higher --lr or more --epochs")
    for name, rate in (("spurious", v.spurious_disagreeing), ("core", v.core_disagreeing)):
        if rate is not None and rate < FOLLOWED:
            other = "core" if name == "spurious" else "spurious"
            out.append(f"on the {v.disagreeing} validation prompts whose features disagree, the {name} family of "
                       f"focus types answers {rate:.2f} right (below {FOLLOWED}): the model answers by the {other} "
                       f"feature, or by a mix, whatever the instruction says. Train longer (--epochs; the "
                       f"checkpoint kept is the one with the best validation focus accuracy), or give more "
                       f"examples whose features disagree")
    return out
