"""The settings of MAT-Steer training, importable without torch (the CLI reads its defaults from them)."""
from __future__ import annotations

from dataclasses import dataclass

VARIANTS = ("paper", "released")  # the loss form (see steerkit.mat.losses)
MMD_EDITS = ("all", "own")
RECIPES = ("scaled", "paper")


@dataclass
class MATConfig:
    """Defaults are the paper's (λ_pos = 0.9, λ_ortho = 0.1, Adam lr 1e-3, 16 + 16 per
    attribute per batch) with the ``scaled`` recipe's data-derived σ and warm starts, each attribute's
    MMD taken over its negatives edited by its own vector (``mmd_edit`` "own": when texts carry several
    attributes, editing them with every vector pulls the θ against each other; measured in issue 17),
    and, measured on SmolLM2-135M (issue 27), each θ kept at its warm start's length with no sparsity
    term (λ_sparse = 0): with θ free, the loss trades gate for length (θ grew to 8× the mean
    difference while the gates fell to 0.15), and the sparsity term shut the gates on the neutral text
    users steer. The scaled recipe also trains 20 epochs and its vectors steer without norm
    preservation (training still edits with it): the lever that helped on both SmolLM2-135M and Gemma 3
    270M on the benchmark's development split (issue 37, ``benches/steer_levers.py``); on the test
    split MAT-Steer was then on or above the mean difference in 12 of 18 cells on SmolLM2 and 2 of 18
    on Gemma (100 epochs with norm preservation: 10 and 1), with 4-5x less training, and what each
    attribute keeps with both steered did not move. ``MATConfig.paper()`` is the paper's recipe
    unchanged (lambda_sparse = 0.9, theta free, 100 epochs, norm preservation in training and at
    inference)."""

    recipe: str = "scaled"
    variant: str = "paper"            # loss form: "paper" or "released" (see steerkit.mat.losses)
    sigma: float | None = None        # None: 2.0 for the paper recipe, the median distance for scaled
    lambda_pos: float = 0.9
    lambda_sparse: float | None = None  # None: 0.9 (the paper's) for the paper recipe, 0 for scaled
    lambda_ortho: float = 0.1
    lr: float = 1e-3
    epochs: int | None = None         # None: 20 for the scaled recipe, the paper's 100 for paper
    batch_pos: int = 16
    batch_neg: int = 16
    steps_per_epoch: int | None = None  # None: one pass over the largest positive or negative set
    mmd_edit: str | None = None       # which vectors edit attribute t's negatives in its MMD: "own" (θ_t) or
                                      # "all"; None: "own" for the scaled recipe, "all" (the paper's f) for paper
    norm_preserve: bool = True        # rescale edited rows to their old norm in training's MMD term
    steer_norm_preserve: bool | None = None  # the trained vectors' own flag (how they steer at inference);
                                             # None: off for the scaled recipe, ``norm_preserve`` for paper
    fix_theta_norm: bool | None = None  # keep each θ at its warm start's length, only its direction learns;
                                        # None: on for the scaled recipe, off for paper
    seed: int = 0
    device: str | None = None           # None: CUDA when available, else CPU

    @classmethod
    def paper(cls, **overrides) -> "MATConfig":
        return cls(**{"recipe": "paper", "sigma": 2.0, "mmd_edit": "all", "lambda_sparse": 0.9,
                      "fix_theta_norm": False, **overrides})

    def resolved_lambda_sparse(self) -> float:
        return self.lambda_sparse if self.lambda_sparse is not None else (0.9 if self.recipe == "paper" else 0.0)

    def resolved_fix_theta_norm(self) -> bool:
        return self.fix_theta_norm if self.fix_theta_norm is not None else self.recipe == "scaled"

    def resolved_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (100 if self.recipe == "paper" else 20)

    def resolved_steer_norm_preserve(self) -> bool:
        if self.steer_norm_preserve is not None:
            return self.steer_norm_preserve
        return self.norm_preserve and self.recipe == "paper"

    def resolved_mmd_edit(self) -> str:
        return self.mmd_edit or ("all" if self.recipe == "paper" else "own")

    def check(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.mmd_edit is not None and self.mmd_edit not in MMD_EDITS:
            raise ValueError(f"mmd_edit must be one of {MMD_EDITS}, got {self.mmd_edit!r}")
        if self.lambda_sparse is not None and not self.lambda_sparse >= 0:
            raise ValueError(f"lambda_sparse must be >= 0 or None, got {self.lambda_sparse}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0 or None, got {self.sigma}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1 or None, got {self.epochs}")
        for name in ("batch_pos", "batch_neg"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
