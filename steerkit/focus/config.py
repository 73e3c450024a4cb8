"""The settings of focus training, importable without torch (the CLI reads its defaults from them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | tuple[str, ...] = "all-linear"  # PEFT's name for every linear layer but the head
    # LoRA on the output head too: for labels the base has never produced, whose head rows training only
    # ever pushed down. Without it the toy demo's FIT trained against a validation loss stuck near 3.4 nats
    # (p(label) ~ 0.03: the base's own answer words keep the mass) and one base in five fell below 0.9
    # on the flipped split; with it the loss goes to ~0 (issue 17)
    head: bool = False

    def peft_config(self, head_name: str | None = None, linear_names: tuple[str, ...] = ()):
        """PEFT's config. With ``head``, ``head_name`` (the output head's module name) is added to the
        targets, and "all-linear" is spelled out as ``linear_names``, since PEFT's "all-linear" leaves
        the head out."""
        from peft import LoraConfig, TaskType

        if self.r < 1:
            raise ValueError(f"r: the LoRA rank must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout}")
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        if self.head:
            if not head_name:
                raise ValueError("head: LoRA on the output head needs the model's head module name")
            if targets == "all-linear":
                if not linear_names:
                    raise ValueError("head: spelling out 'all-linear' needs the model's linear layer names")
                targets = list(linear_names)
            elif isinstance(targets, str):
                raise ValueError(f"head: cannot add the output head to the pattern {targets!r}; list the "
                                 f"target modules instead")
            targets = list(dict.fromkeys([*targets, head_name]))
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                          task_type=TaskType.CAUSAL_LM)


# steerkit fit's draw of focus types per training example (build_focus_dataset's per_example and
# per_disagreeing): two for the examples whose two features agree, every type for those where they
# disagree, the only ones on which the two families of focus types call for different answers. On
# SmolLM2-135M-Instruct and 240 travel reviews (README, seed 0), one type per example (the paper's
# draw; issue 28's run) left focus(S) at 0.0 on the flipped split, two per example 0.68, all seven on
# every example 0.75 (2 epochs, 1171 s), this draw 1.00 (3 epochs, 627 s).
PER_EXAMPLE = 2
PER_DISAGREEING = "all"


SELECT = ("focus_accuracy", "loss")


@dataclass(frozen=True)
class FocusTrainConfig:
    epochs: float = 3.0
    # 1e-3: the rate of the recipe measured on SmolLM2 (README); issue 28's run at 2e-4 (with one focus
    # type per example) learned nothing of the spurious family, and 2e-4 was not tried with this draw
    lr: float = 1e-3
    # rates tried in turn, each from the same LoRA initialisation, while the checkpoint kept leaves a family
    # of focus types unfollowed on the validation records (focus.validation.problems); the try with the
    # best validation focus score is kept. Each retry trains for retry_epochs (None: epochs). On Gemma 3
    # 270M (README, seed 0), 1e-3 never learned the spurious family in 6 epochs; 3e-4 over 6 epochs had
    # every type at 1.00 from 3 epochs on, while 3e-4 over 3 epochs (the rate decays to 0 by the end)
    # left focus(S) at 0.23 on the flipped split. On SmolLM2 1e-3 holds and 3e-4 does not, so neither
    # rate fits both, and a model that needs no retry pays nothing for it. Needs select="focus_accuracy"
    # (the problems are measured there).
    retry_lrs: tuple[float, ...] = (3e-4,)
    retry_epochs: float | None = 6.0
    batch_size: int = 8
    grad_accum: int = 1
    weight_decay: float = 0.0
    warmup: float = 0.03  # fraction of the steps
    max_length: int | None = 512
    val_fraction: float = 0.1  # held out from the training records when no validation set is given
    # with val_fraction: at least this many examples whose features disagree (at most half of them) go to
    # the validation records, each group split apart (stratified); 0 keeps the plain random split. On
    # Gemma 3 270M (seed 0, README) the plain split held two, whose six spurious-family prompts said 0.67
    # where 40 flipped test reviews said 0.30. Not the default: with 4, Gemma met every target on 3 of 3
    # seeds but SmolLM2's seed 1 fell to focus(S) 0.78 (1.00 plain), as the held-out examples leave training.
    # val_flipped (below) gives the check its prompts without taking any from training
    val_disagreeing: int = 0
    # with a task given to focus.train: the validation focus measures also score copies of the validation
    # examples whose features agree, naming a spurious value tied to the other label (focus.data.flipped_copies),
    # so the checkpoint kept and the retry are judged on many prompts where the instruction decides the answer
    # (the validation loss, a tie-breaker, stays the records' own).
    # The training examples are the plain split's. On Gemma 3 270M's seed 0 (README) the plain split's 6
    # such prompts said the spurious family was followed (0.67) where the flipped test said 0.30; with the
    # copies, 168 prompts said 0.33, the retry ran, and every focus type reached 1.00 on the flipped test
    val_flipped: bool = True
    eval_every: int | None = None  # steps between validations; None: once per epoch
    patience: int | None = 3  # validations without improvement before stopping; None: never stop early
    # what the checkpoint kept and early stopping follow: "focus_accuracy" (the validation records' focus
    # accuracy, mean over their focus types; the loss breaks ties) or "loss" (the validation loss alone).
    # The loss falls once the labels are learned while a family of focus types can still be at chance
    # (focus.validation; on Gemma 3 270M, README)
    select: str = "focus_accuracy"
    seed: int = 0
    progress: bool = True
    label_only_loss: bool = True  # the LM head sees only the target rows (same loss, no prompt logits)
    # steerkit.lora.accelerate (fused LoRA linear and gated MLP) on the layers it applies to, and on the
    # CPU grouped-query attention with shared key/value heads (hf.grouped_query_sdpa)
    fused_lora: bool = True
    # padding-free batches: None = where attention runs varlen kernels (flash attention), which is where
    # packing saves compute; with SDPA/eager a block-diagonal mask over the packed row costs more
    # attention than the padding it removes. True forces it (an error where it is not exact).
    packed: bool | None = None
    device: str | None = None  # None: CUDA when available, else the CPU

    def check(self) -> None:
        """Refuses settings that cannot train, before any work is done."""
        if not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.retry_epochs is not None and not self.retry_epochs > 0:
            raise ValueError(f"retry_epochs must be > 0 or None, got {self.retry_epochs}")
        for x in self.retry_lrs:
            if not (isinstance(x, (int, float)) and x > 0):
                raise ValueError(f"retry_lrs: expected learning rates > 0, got {x!r}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 or None, got {self.max_length}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_disagreeing < 0:
            raise ValueError(f"val_disagreeing must be >= 0, got {self.val_disagreeing}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1 or None, got {self.eval_every}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.select not in SELECT:
            raise ValueError(f"select: expected one of {', '.join(SELECT)}, got {self.select!r}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")

    def attempts(self) -> tuple[tuple[float, float], ...]:
        """The (learning rate, epochs) training may try, in order: ``lr`` for ``epochs``, then each of
        ``retry_lrs`` for ``retry_epochs``, skipping any already tried (none when the checkpoint is chosen
        by the loss alone, which measures no problems)."""
        first = (self.lr, self.epochs)
        if self.select != "focus_accuracy":
            return (first,)
        again = self.epochs if self.retry_epochs is None else self.retry_epochs
        return tuple(dict.fromkeys((first, *((lr, again) for lr in self.retry_lrs))))
