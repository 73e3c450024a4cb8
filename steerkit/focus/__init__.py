"""Focus Instruction Tuning (FIT, arXiv 2410.22944): focus-instruction data, LoRA focus training, and
focus-accuracy evaluation."""
from .._lazy import lazy

_DATA = ("FocusExample", "FocusRecord", "FocusTask", "build_focus_dataset", "core_family_only", "load_examples", "load_records",
         "save_jsonl", "spurious_family_problem", "FocusDataWarning", "spurious_rate", "with_spurious_rate")
_NAMES = {**{n: ".data" for n in _DATA},
          **{n: ".evaluation" for n in ("FocusReport", "evaluate", "predict", "score_choices")},
          **{n: ".templates" for n in ("CORE_FAMILY", "FOCUS_TYPES", "SPURIOUS_FAMILY")},
          "FocusTrainConfig": ".config", "LoraSettings": ".config", "FocusTrainResult": ".trainer", "FocusTrainingWarning": ".trainer",
          "train": ".trainer"}
__getattr__, __dir__ = lazy(__name__, _NAMES)
__all__ = list(_NAMES)
