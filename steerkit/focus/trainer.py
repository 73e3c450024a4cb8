"""Focus training: LoRA adapters (PEFT, so they load anywhere PEFT does) trained with the Hugging Face
Trainer (so ``accelerate launch`` / ``torchrun`` multi-GPU runs work unchanged), with the loss on the
target tokens only; the checkpoint kept, and early stopping, follow the validation focus accuracy
(``focus.validation``), or the validation loss where the config says so."""
from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import hf
from ..devices import resolve_device
from ..launch import rank_and_world, run_id
from ..outputs import check_output_dir
from .config import FocusTrainConfig, LoraSettings
from .data import FocusDataWarning, FocusRecord, flipped_copies, load_records, spurious_family_problem
from .encode import encode, pack_batch, packing_problem, pad_batch, pad_id
from .loss import causal_lm, label_only_loss
from . import validation
from .validation import ValidationFocus

log = logging.getLogger("steerkit.focus")


class FocusTrainingWarning(UserWarning):
    """A focus-tuned model that does not follow its focus instructions on the validation records."""


@dataclass
class FocusTrainResult:
    model: object  # the PeftModel, with the best validation checkpoint loaded
    history: list[dict] = field(default_factory=list)  # the Trainer's log: train loss, eval_loss per step
    best_val_loss: float | None = None  # the validation loss of the checkpoint kept
    steps: int = 0
    seconds: float = 0.0
    # per evaluation: step, epoch, validation loss and focus accuracy (per type and per family on the
    # prompts whose features disagree); empty when the config selects by loss alone
    val_focus_history: list[dict] = field(default_factory=list)
    val_focus: ValidationFocus | None = None  # the kept checkpoint's, as measured when it was evaluated
    problems: list[str] = field(default_factory=list)  # focus.validation.problems of val_focus
    lr: float | None = None  # the learning rate of the try kept
    epochs: float | None = None  # the epochs of the try kept
    # one summary per (learning rate, epochs) tried (config.attempts(): the next only where the one before
    # had problems)
    tries: list[dict] = field(default_factory=list)

    @property
    def score(self) -> float:
        """What the tries are compared by: the kept checkpoint's validation focus score (higher is better),
        or minus its validation loss where no focus accuracy was measured."""
        if self.val_focus is None:
            return -(self.best_val_loss if self.best_val_loss is not None else float("inf"))
        return validation.selection_score(self.val_focus.mean, self.best_val_loss or 0.0)

    def summary(self) -> dict:
        val_focus = None if self.val_focus is None else self.val_focus.metrics()
        return dict(lr=self.lr, epochs=self.epochs, steps=self.steps, seconds=self.seconds,
                    best_val_loss=self.best_val_loss, val_focus=val_focus, problems=self.problems)

    def save(self, path: str | Path, tokenizer=None, extra: dict | None = None) -> Path:
        """The adapter as an ordinary PEFT folder, plus ``steerkit_focus.json`` with the run's log."""
        path = Path(path)
        self.model.save_pretrained(str(path))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(path))
        info = dict(history=self.history, best_val_loss=self.best_val_loss, steps=self.steps, seconds=self.seconds,
                    val_focus_history=self.val_focus_history, problems=self.problems, lr=self.lr,
                    epochs=self.epochs, tries=self.tries,
                    val_focus=None if self.val_focus is None else asdict(self.val_focus))
        (path / "steerkit_focus.json").write_text(json.dumps(info | (extra or {}), indent=1, default=str))
        return path


class _Encoded(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def split_validation(records: list[FocusRecord], fraction: float, seed: int = 0, disagreeing: int = 0):
    """(train, val) with whole examples on one side, so no input is in both. With ``disagreeing`` > 0 the
    examples whose features disagree (spurious label not the label) and the others are split apart, each
    at ``fraction``, and at least ``disagreeing`` of the first kind (at most half of them) are held out."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction: expected a fraction in (0, 1), got {fraction}")
    ids = sorted({r.id for r in records})
    if len(ids) < 2:
        raise ValueError("records: need at least two distinct examples to hold some out for validation")
    rng = random.Random(seed)
    if disagreeing <= 0:
        rng.shuffle(ids)
        held = set(ids[:max(1, round(fraction * len(ids)))])
    else:
        against = sorted({r.id for r in records if r.features_disagree})
        agree = sorted(set(ids) - set(against))
        rng.shuffle(against)
        rng.shuffle(agree)
        n_against = max(round(fraction * len(against)), min(disagreeing, len(against) // 2))
        held = set(against[:n_against]) | set(agree[:round(fraction * len(agree))])
        held = held or {agree[0] if agree else against[0]}
    return [r for r in records if r.id not in held], [r for r in records if r.id in held]


def _encode_all(tok, records, max_length):
    return [encode(tok, r.prompt, r.completion(), r.chat, max_length) for r in records]


def _use_packing(model, packed: bool | None) -> bool:
    if packed is False:
        return False
    problem = packing_problem(model)
    if packed is None:
        impl = str(getattr(causal_lm(model).config, "_attn_implementation", ""))
        return problem is None and impl.startswith("flash_attention")
    if problem:
        raise ValueError(f"packed: padding-free batches are not exact for this model: {problem}")
    return True


def _trainer_class(label_only: bool):
    from transformers import Trainer

    class FocusTrainer(Trainer):
        def save_model(self, *args, **kwargs):
            super().save_model(*args, **kwargs)
            # Every rank calls this from the checkpoint save; rank 0 alone writes. In older releases
            # (4.51 among them) the other ranks then check at once whether the best checkpoint's folder exists, and one
            # that looks before rank 0 has written it never loads the best model, skips the barrier that goes
            # with it, and the ranks wait on different collectives for ever. Waiting here closes that race.
            if rank_and_world()[1] > 1:
                self.accelerator.wait_for_everyone()

    if not label_only:
        return FocusTrainer

    class LabelOnlyTrainer(FocusTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = label_only_loss(model, **inputs, num_items=num_items_in_batch)
            # as the Trainer's own loss: with the item count summed over ranks, DDP's mean over ranks
            # must be undone, so the gradient is the global token mean, averaged once
            loss = loss * hf.trainer_loss_scale(self, num_items_in_batch)
            return (loss, {"loss": loss}) if return_outputs else loss

    return LabelOnlyTrainer


def _focus_callback(tok, val, batch_size: int, max_length: int | None):
    """A Trainer callback that adds the validation focus accuracy (and the selection score) to each
    evaluation's metrics, before early stopping and the best-checkpoint choice read them; it keeps them
    in ``.history``. It must come before EarlyStoppingCallback in the Trainer's callbacks."""
    from transformers import TrainerCallback

    class FocusAccuracy(TrainerCallback):
        def __init__(self):
            self.history: list[dict] = []
            self.measures: list[ValidationFocus] = []  # one per entry of history

        def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
            v = validation.measure(model, tok, val, batch_size, max_length)
            self.measures.append(v)
            loss = metrics["eval_loss"]
            metrics.update({f"eval_{k}": x for k, x in v.metrics().items()})
            metrics["eval_focus_score"] = validation.selection_score(v.mean, loss)
            self.history.append(dict(step=state.global_step, epoch=state.epoch, loss=loss,
                                     score=metrics["eval_focus_score"]) | v.metrics())
            log.info("steerkit.focus: step %d, validation loss %.4f, focus accuracy %.3f", state.global_step, loss,
                     v.mean)

    return FocusAccuracy()


def wrap_lora(model, lora: LoraSettings, seed: int = 0):
    """``model`` with fresh LoRA adapters (seeded); a PeftModel passes through to train its adapters on."""
    from peft import PeftModel, get_peft_model
    from transformers import set_seed

    if isinstance(model, PeftModel):
        return model
    names = {}
    if lora.head:
        head = hf.output_head_name(model)
        names = dict(head_name=head, linear_names=hf.linear_layer_names(model, exclude=head))
    config = lora.peft_config(**names)  # refuses before the model is touched
    set_seed(seed)
    return get_peft_model(model, config)


def train(model, tok, records, val=None, lora: LoraSettings = LoraSettings(),
          config: FocusTrainConfig = FocusTrainConfig(), output_dir: str | Path | None = None,
          task=None) -> FocusTrainResult:
    """Focus-tune ``model`` with LoRA on focus records (see ``build_focus_dataset``). Without ``val``,
    ``config.val_fraction`` of the examples is held out. With ``output_dir`` the adapter, tokenizer and
    log are saved there. Returns the PeftModel with its best checkpoint loaded and the log.

    Training runs at ``config.lr``; where the checkpoint kept leaves a family of focus types unfollowed on
    the validation records, it runs again from the same LoRA initialisation at each of
    ``config.retry_lrs`` in turn (for ``config.retry_epochs``), and keeps the try with the best validation
    focus score.

    With the ``task`` (a ``FocusTask``) and ``config.val_flipped``, the validation focus accuracy also
    scores copies of the validation examples with the spurious value swapped for one tied to another
    label (``focus.data.flipped_copies``): prompts where the instruction decides the answer, which a
    random validation split holds few of. The validation loss is the records' own."""
    config.check()
    device = resolve_device(config.device, "device")
    if output_dir is not None:
        check_output_dir(output_dir, "output_dir")
    records = load_records(records)
    problem = spurious_family_problem(records)
    if problem:
        warnings.warn(problem, FocusDataWarning, stacklevel=2)
    if val is None:
        records, val = split_validation(records, config.val_fraction, config.seed, config.val_disagreeing)
    val = load_records(val)
    rows = (_encode_all(tok, records, config.max_length), _encode_all(tok, val, config.max_length))
    if task is not None and config.val_flipped:
        # the copies go to the focus measures (the checkpoint kept, the retry), not to the validation loss,
        # which only breaks ties there: scoring them costs one forward each per evaluation
        copies = flipped_copies(val, task, tok, config.seed)
        log.info("steerkit.focus: %d validation prompts, and %d of copies with the spurious value swapped",
                 len(val), len(copies))
        val = val + copies
    packed = _use_packing(model, config.packed)  # before wrapping: a refusal leaves the model untouched
    peft_model = wrap_lora(model, lora, config.seed)
    rank, _ = rank_and_world()
    with warnings.catch_warnings():
        if lora.head:  # PEFT saves the frozen head with each checkpoint (harmless) and warns each time
            warnings.filterwarnings("ignore", message=".*save_embedding_layers", category=UserWarning)
        start = _adapter_state(peft_model)
        tries: list[FocusTrainResult] = []
        best, best_state = None, None
        for i, (lr, epochs) in enumerate(config.attempts()):
            if i:
                _load_adapter_state(peft_model, start)
                log.warning("steerkit.focus: at lr %g, %s; training again from the same start at lr %g for %g epochs",
                            tries[-1].lr, "; ".join(tries[-1].problems), lr, epochs)
            result = _train_once(peft_model, tok, rows, val, config, lr, epochs, packed, device, output_dir)
            tries.append(result)
            if best is None or result.score > best.score:
                best = result
                best_state = _adapter_state(peft_model) if result.problems else None
            if not result.problems:
                break
        if best is not tries[-1]:
            _load_adapter_state(peft_model, best_state)
        best.tries = [t.summary() for t in tries]
        best.seconds = sum(t.seconds for t in tries)
        for p in best.problems:
            warnings.warn(p, FocusTrainingWarning, stacklevel=2)
        if output_dir is not None and rank == 0:  # one writer under torchrun / accelerate launch
            base_dtype = str(next(peft_model.get_base_model().parameters()).dtype).removeprefix("torch.")
            best.save(output_dir, tok, dict(lora=asdict(lora), config=asdict(config), base_dtype=base_dtype))
    return best


def _adapter_state(peft_model) -> dict:
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def _load_adapter_state(peft_model, state: dict) -> None:
    from peft import set_peft_model_state_dict

    set_peft_model_state_dict(peft_model, state)


def _train_once(peft_model, tok, rows, val, config: FocusTrainConfig, lr: float, epochs: float, packed: bool,
                device: str, output_dir) -> FocusTrainResult:
    """One Trainer run of the adapters at ``lr`` for ``epochs``, its best checkpoint loaded at the end."""
    from transformers import EarlyStoppingCallback, PrinterCallback, TrainingArguments, set_seed

    train_rows, val_rows = rows
    rank, world = rank_and_world()
    # each of the world's processes takes batch_size rows a step: the global batch is world times larger
    steps_per_epoch = max(1, len(train_rows) // (config.batch_size * config.grad_accum * world))
    total = max(1, int(steps_per_epoch * epochs))
    every = config.eval_every or steps_per_epoch
    scratch = _scratch_dir(output_dir, world)
    by_focus = config.select == "focus_accuracy"
    args = TrainingArguments(
        output_dir=str(scratch), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=epochs, learning_rate=lr, weight_decay=config.weight_decay,
        warmup_steps=int(config.warmup * total), lr_scheduler_type="linear",
        eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every, save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="eval_focus_score" if by_focus else "eval_loss",
        greater_is_better=by_focus,
        logging_steps=max(1, min(every, 50)), report_to="none", seed=config.seed, data_seed=config.seed,
        disable_tqdm=not config.progress, remove_unused_columns=False, dataloader_num_workers=0,
        use_cpu=device == "cpu", prediction_loss_only=True,
    )
    set_seed(config.seed)
    focus_cb = _focus_callback(tok, val, config.batch_size, config.max_length) if by_focus else None
    # the focus callback first: early stopping reads the metric it adds
    callbacks = [c for c in (focus_cb, config.patience and EarlyStoppingCallback(config.patience)) if c]
    pad = pad_id(tok)
    trainer = _trainer_class(config.label_only_loss)(
        model=peft_model, args=args, train_dataset=_Encoded(train_rows), eval_dataset=_Encoded(val_rows),
        data_collator=pack_batch if packed else (lambda rows: pad_batch(rows, pad)), callbacks=callbacks)
    if not config.progress:
        trainer.remove_callback(PrinterCallback)
    fused = None
    attention = contextlib.nullcontext()
    if config.fused_lora:
        from ..lora import accelerate

        fused = accelerate(peft_model)
        attention = hf.grouped_query_sdpa(peft_model)
    t0 = time.perf_counter()
    try:
        with attention as why:  # for training only: the returned model attends as it was loaded
            if why:
                log.info("steerkit.focus: attention stays transformers' SDPA: %s", why)
            trainer.train()
        if world > 1:
            trainer.accelerator.wait_for_everyone()  # every rank has loaded the best checkpoint
    finally:
        if rank == 0:
            shutil.rmtree(scratch, ignore_errors=True)
        if fused is not None:
            fused.remove()  # the returned model is plain PEFT
    result = FocusTrainResult(trainer.model, list(trainer.state.log_history), trainer.state.best_metric,
                              trainer.state.global_step, time.perf_counter() - t0, lr=lr, epochs=epochs)
    if focus_cb is not None:
        result.val_focus_history = focus_cb.history
        if focus_cb.history:
            # the kept checkpoint is the first best score, as the Trainer keeps it; its measure is the one
            # taken when it was evaluated (the same weights; measuring again would cost a pass over the
            # validation and its flipped copies)
            kept = max(range(len(focus_cb.history)), key=lambda i: focus_cb.history[i]["score"])
            result.best_val_loss, result.val_focus = focus_cb.history[kept]["loss"], focus_cb.measures[kept]
        else:  # training too short for an evaluation
            result.val_focus = validation.measure(result.model, tok, val, config.batch_size, config.max_length)
        result.problems = validation.problems(result.val_focus, len(val[0].choices))
    return result


def _scratch_dir(output_dir, world: int) -> Path:
    """Where the Trainer keeps its checkpoints. Every rank must see the same folder (rank 0 writes the
    checkpoints, every rank loads the best one), so under several processes it is inside the output
    folder, or named after the launch in the temp folder (one machine)."""
    if world == 1:
        return Path(tempfile.mkdtemp(prefix="steerkit-fit-"))
    if output_dir is not None:
        return Path(output_dir) / ".steerkit-checkpoints"
    return Path(tempfile.gettempdir()) / f"steerkit-fit-{run_id()}"
