"""What one benchmark run does; importable without torch (the CLI reads its defaults here)."""
from __future__ import annotations

import math
from dataclasses import dataclass

VECTOR_METHODS = ("mean_diff", "probe", "mat", "mat_paper")
METHODS = ("prompt", *VECTOR_METHODS)


AUTO_PLACES = "auto"


def parse_place(text: str, num_layers: int | None = None) -> tuple[str, int]:
    """``"block_out@12"`` as ("block_out", 12)."""
    from ..sites import SITES

    site, at, layer = str(text).partition("@")
    if not at or site not in SITES or not layer.isdigit():
        raise ValueError(f"places: expected SITE@LAYER with SITE one of {', '.join(SITES)}, or 'auto', got {text!r}")
    if num_layers is not None and not int(layer) < num_layers:
        raise ValueError(f"places: {text}: this model has layers 0..{num_layers - 1}")
    return site, int(layer)


@dataclass
class BenchSettings:
    """What one benchmark run does. ``layer`` None: 40% of the model's depth (12 of SmolLM2's 30)."""

    site: str = "block_out"
    layer: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = METHODS
    strengths: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
    prompts: int = 24
    carrying_prompts: int = 16
    max_new_tokens: int = 20
    per_class: int = 240
    budgets: tuple[float, ...] = (0.25, 0.5, 1.0)
    calibration_budget: float = 0.5
    mat_epochs: int | None = None  # None: MATConfig's default
    places: tuple[str, ...] = ()   # candidate SITE@LAYER places chosen among on a development split
    #                                ("auto": steerkit's set); empty: every method at (site, layer)
    dev_prompts: int = 12          # development prompts (after the test's) for choosing the place
    dev_per_class: int = 120       # development training texts per attribute and label

    @classmethod
    def quick(cls, **overrides) -> "BenchSettings":
        """What CI runs: one seed, the mean difference and steerkit's MAT-Steer, few prompts, a short
        sweep, short MAT training."""
        return cls(**{**dict(seeds=(0,), methods=("mean_diff", "mat"), strengths=(2.0, 8.0), prompts=8,
                             carrying_prompts=8, max_new_tokens=16, per_class=60, mat_epochs=10, dev_prompts=6,
                             dev_per_class=40), **overrides})

    def check(self) -> None:
        if not self.seeds:
            raise ValueError("seeds: give at least one data seed")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods: expected some of {', '.join(METHODS)}, got {list(self.methods)}")
        if not self.strengths or any(not (s > 0 and math.isfinite(s)) for s in self.strengths):
            raise ValueError(f"strengths: expected finite values > 0, got {list(self.strengths)}")
        for name in ("prompts", "carrying_prompts", "max_new_tokens", "per_class", "dev_prompts", "dev_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if tuple(self.places) != (AUTO_PLACES,):
            for p in self.places:
                parse_place(p)
        if not all(b > 0 for b in self.budgets) or not self.calibration_budget > 0:
            raise ValueError("budgets and calibration_budget must be > 0 (nats per token)")
