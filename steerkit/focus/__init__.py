"""Focus Instruction Tuning (FIT, arXiv 2410.22944): focus-instruction data, LoRA focus training, and
focus-accuracy evaluation."""
from .data import (FocusExample, FocusRecord, FocusTask, build_focus_dataset, load_examples, load_records,
                   save_jsonl, spurious_rate, with_spurious_rate)
from .evaluate import FocusReport, evaluate, predict, score_choices
from .templates import CORE_FAMILY, FOCUS_TYPES, SPURIOUS_FAMILY
from .train import FocusTrainConfig, FocusTrainResult, LoraSettings, train

__all__ = ["FocusExample", "FocusRecord", "FocusTask", "build_focus_dataset", "load_examples", "load_records",
           "save_jsonl", "spurious_rate", "with_spurious_rate", "FocusReport", "evaluate", "predict", "score_choices",
           "CORE_FAMILY", "FOCUS_TYPES", "SPURIOUS_FAMILY", "FocusTrainConfig", "FocusTrainResult", "LoraSettings",
           "train"]
