"""Local checkpoints on every supported release: Hugging Face folders and GGUF files (dequantized),
opened without their weights (``open_checkpoint``) or loaded (``load_model``), written so every
release reads them back (``save_model``), the ``from_pretrained`` dtype keyword, and the traps across
releases this handles (rope theta, the tokenizer class, BOS of a GGUF tokenizer, a GGUF model's
quantizer). Also the chat template."""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .release import transformers_version

def dtype_kwargs(dtype) -> dict:
    """The ``from_pretrained`` keyword for a dtype (``torch_dtype`` before transformers 4.56)."""
    if dtype is None:
        return {}
    if isinstance(dtype, str):  # a name ("bfloat16"), as the CLI and a saved recipe give it
        import torch

        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"dtype: expected a torch dtype's name (float32, bfloat16, float16), got {dtype!r}")
        dtype = getattr(torch, dtype)
    return {"dtype" if transformers_version() >= (4, 56) else "torch_dtype": dtype}


GGUF_NEEDS = ("gguf", "accelerate")  # what transformers needs to dequantize a GGUF checkpoint


def checkpoint_files(path: str | Path, what: str = "--model") -> tuple[Path, str | None]:
    """(folder, GGUF file name or None) of a local checkpoint given as a Hugging Face folder, a ``.gguf``
    file, or a folder holding exactly one ``.gguf`` file. Never downloads anything."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return path, None
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return path, ggufs[0]
        if ggufs:
            raise ValueError(f"{what}: {path} holds {len(ggufs)} .gguf files ({', '.join(ggufs)}); name one of them")
    raise FileNotFoundError(f"{what}: no local model at {path} (expected a Hugging Face folder with config.json, a "
                            ".gguf file, or a folder holding one); steerkit loads local checkpoints only and never "
                            "downloads")


@dataclass
class Checkpoint:
    """A local checkpoint opened without its weights: its config and tokenizer (seconds), so what can
    be refused from them is refused before ``load()`` reads the weights (a minute for a GGUF)."""

    folder: Path
    gguf: str | None
    config: object
    tokenizer: object

    @property
    def model_type(self) -> str | None:
        return getattr(self.config, "model_type", None)

    def shape(self) -> dict:
        """What the config says of the decoder stack: layer count and the width of the residual stream
        (the block_out, attn_out and mlp_out sites); values it does not give are left out."""
        text = self.config.get_text_config() if hasattr(self.config, "get_text_config") else self.config
        out = {}
        for key, name in (("num_layers", "num_hidden_layers"), ("hidden_size", "hidden_size")):
            value = getattr(text, name, None)
            if isinstance(value, int):
                out[key] = value
        return out

    def load(self, dtype=None, device: str | None = None):
        """The causal LM in eval mode (see ``load_model``)."""
        from transformers import AutoModelForCausalLM

        _quiet_in_logs()
        if self.gguf is not None:
            model = _plain(AutoModelForCausalLM.from_pretrained(str(self.folder), local_files_only=True,
                                                                gguf_file=self.gguf, **dtype_kwargs(dtype)))
        else:
            model = AutoModelForCausalLM.from_pretrained(str(self.folder), config=self.config, local_files_only=True,
                                                         **dtype_kwargs(dtype))
        if device:
            model = model.to(device)
        return model.eval()


def _quiet_in_logs() -> None:
    import sys

    from transformers.utils import logging as hf_logging

    if not sys.stderr.isatty():  # a GGUF's per-tensor bars would write hundreds of redraws into a log
        hf_logging.disable_progress_bar()


def open_checkpoint(path: str | Path, what: str = "--model") -> Checkpoint:
    """A local checkpoint (as ``load_model`` takes it) with its config and tokenizer read, not its weights."""
    from ..known_models import resolve

    folder, gguf = checkpoint_files(resolve(path) or path, what)
    from transformers import AutoConfig

    _quiet_in_logs()
    if gguf is not None:
        missing = [m for m in GGUF_NEEDS if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"{what}: loading {gguf} needs {' and '.join(missing)} (pip install {' '.join(GGUF_NEEDS)})")
        source = dict(gguf_file=gguf)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, **source)
        tok = _tokenizer(folder, source)
        _gguf_bos(tok, folder / gguf)
    else:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        _restore_rope_theta(config, folder)
        tok = _tokenizer(folder, {})
    return Checkpoint(folder, gguf, config, tok)


def load_model(path: str | Path, dtype=None, device: str | None = None, what: str = "--model"):
    """(causal LM in eval mode, tokenizer) from a local checkpoint: a Hugging Face folder, a ``.gguf``
    file (dequantized on load), a folder holding one, or a short name of ``steerkit.known_models``
    (``smollm2``); never downloads anything.

    Handled here, on every supported release: a GGUF-loaded model becomes a plain one (transformers
    keeps it marked as quantized, which refuses ``save_pretrained`` and trips PEFT); a folder written
    by transformers 5 (``rope_parameters`` and no ``rope_theta``, tokenizer class ``TokenizersBackend``)
    loads on 4.x as the same model rather than with the default rope theta; and the tokenizer never
    returns ``token_type_ids``, which ``generate()`` refuses."""
    ckpt = open_checkpoint(path, what)
    return ckpt.load(dtype, device), ckpt.tokenizer


def _tokenizer(folder: Path, source: dict):
    """The checkpoint's tokenizer, without ``token_type_ids`` in what it returns. A tokenizer saved by
    transformers 5 names the class ``TokenizersBackend``, which 4.x does not know: its
    ``tokenizer.json`` is read by the fast tokenizer class those releases have."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **source)
    except ValueError as err:
        if "TokenizersBackend" not in str(err) or not (folder / "tokenizer.json").is_file():
            raise
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)
    tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok


def _gguf_bos(tok, file: Path) -> None:
    """A GGUF file says whether its tokenizer starts a text with BOS (``tokenizer.ggml.add_bos_token``);
    4.x builds a Llama tokenizer that adds one whatever the file says (SmolLM2's says no), so the same
    prompt became different tokens than on transformers 5."""
    from gguf import GGUFReader

    field = GGUFReader(str(file)).fields.get("tokenizer.ggml.add_bos_token")
    if field is None or not field.data:
        return
    wanted = bool(field.parts[field.data[0]][0])
    if getattr(tok, "add_bos_token", wanted) != wanted:
        tok.add_bos_token = wanted


def _restore_rope_theta(config, folder: Path) -> None:
    """transformers 5 writes the rope settings as ``rope_parameters`` only; 4.x reads ``rope_theta``
    and, finding none, silently uses the default 10000 (SmolLM2's is 100000)."""
    if transformers_version() >= (5, 0):
        return
    for key, value in _legacy_rope(json.loads((folder / "config.json").read_text())).items():
        setattr(config, key, value)


def _legacy_rope(raw: dict) -> dict:
    """The 4.x keys (``rope_theta``, and ``rope_scaling`` for a non-default rope) that a config dict
    written by transformers 5 holds only inside ``rope_parameters``; {} when it has them already."""
    params = raw.get("rope_parameters")
    if "rope_theta" in raw or not isinstance(params, dict) or "rope_theta" not in params:
        return {}
    keys = {"rope_theta": params["rope_theta"]}
    if params.get("rope_type", "default") != "default" and "rope_scaling" not in raw:
        keys["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    return keys


def _plain(model):
    """A GGUF-loaded model, dequantized, as an ordinary model of its class: transformers keeps a
    quantizer on it that refuses ``save_pretrained``. The weights are moved, not copied."""
    if getattr(model, "hf_quantizer", None) is None and getattr(model.config, "quantization_config", None) is None:
        return model
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), assign=True)
    # buffers outside the state dict (rope's inv_freq) are still on meta: take the loaded model's
    for name, buf in model.named_buffers():
        owner, _, key = name.rpartition(".")
        plain.get_submodule(owner)._buffers[key] = buf
    plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain.to(next(model.parameters()).dtype)


def save_model(model, tokenizer, folder: str | Path) -> Path:
    """Writes ``model`` and ``tokenizer`` as a Hugging Face folder that every supported transformers
    release loads as the same model: the rope theta also at the top level of ``config.json`` (4.x reads
    only that) and a tokenizer class 4.x knows."""
    folder = Path(folder)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    cfg_path = folder / "config.json"
    raw = json.loads(cfg_path.read_text())
    legacy = _legacy_rope(raw)
    if legacy:
        cfg_path.write_text(json.dumps({**raw, **legacy}, indent=2))
    tok_path = folder / "tokenizer_config.json"
    if tok_path.is_file() and (folder / "tokenizer.json").is_file():
        raw = json.loads(tok_path.read_text())
        if raw.get("tokenizer_class") == "TokenizersBackend":
            raw["tokenizer_class"] = "PreTrainedTokenizerFast"
            tok_path.write_text(json.dumps(raw, indent=2))
    return folder


def check_chat(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("--chat: this model's tokenizer has no chat template")


def chat_prompt(tokenizer, text: str) -> str:
    """``text`` as one user turn in the tokenizer's chat template, ready for the assistant's answer."""
    check_chat(tokenizer)
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)
