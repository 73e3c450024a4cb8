"""The settings of MAT-Steer training, importable without torch (the CLI reads its defaults from them)."""
from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("paper", "released")  # the loss form (see steerkit.mat.losses)
MMD_EDITS = ("all", "own")
RECIPES = ("scaled", "paper")


@dataclass
class MATConfig:
    """Defaults are the paper's (λ_pos = λ_sparse = 0.9, λ_ortho = 0.1, Adam lr 1e-3, 100 epochs,
    16 + 16 per attribute per batch) with the ``scaled`` recipe's data-derived σ and warm starts, and
    each attribute's MMD taken over its negatives edited by its own vector (``mmd_edit`` "own": when
    texts carry several attributes, editing them with every vector pulls the θ against each other;
    measured in issue 17). ``MATConfig.paper()`` is the paper's recipe unchanged."""

    recipe: str = "scaled"
    variant: str = "paper"            # loss form: "paper" or "released" (see steerkit.mat.losses)
    sigma: float | None = None        # None: 2.0 for the paper recipe, the median distance for scaled
    lambda_pos: float = 0.9
    lambda_sparse: float = 0.9
    lambda_ortho: float = 0.1
    lr: float = 1e-3
    epochs: int = 100
    batch_pos: int = 16
    batch_neg: int = 16
    steps_per_epoch: int | None = None  # None: one pass over the largest positive or negative set
    mmd_edit: str | None = None       # which vectors edit attribute t's negatives in its MMD: "own" (θ_t) or
                                      # "all"; None: "own" for the scaled recipe, "all" (the paper's f) for paper
    norm_preserve: bool = True
    seed: int = 0
    device: str | None = None           # None: CUDA when available, else CPU

    @classmethod
    def paper(cls, **overrides) -> "MATConfig":
        return cls(**{"recipe": "paper", "sigma": 2.0, "mmd_edit": "all", **overrides})

    def resolved_mmd_edit(self) -> str:
        return self.mmd_edit or ("all" if self.recipe == "paper" else "own")

    def check(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.mmd_edit is not None and self.mmd_edit not in MMD_EDITS:
            raise ValueError(f"mmd_edit must be one of {MMD_EDITS}, got {self.mmd_edit!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0 or None, got {self.sigma}")
        for name in ("epochs", "batch_pos", "batch_neg"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
