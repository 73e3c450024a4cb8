"""Activations at one (site, layer) of a model, for each attribute's positive and negative texts,
captured through the same hook that later applies the vectors (``steerkit.sites``)."""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import models
from ..sites import register_site_hook
from ..vectors import SITES
from .data import LABELS, by_attribute, data_hash, load_examples

TOKEN_MODES = ("all", "last")
CACHE_VERSION = 2  # 2: "all" leaves out each text's first token


def kept_rows(x: torch.Tensor, tokens: str) -> torch.Tensor:
    """The rows of one text's [tokens, D] activations that training sees. ``all``: every token but the
    first, which has seen nothing of the text but itself and, in most pretrained LLMs, is an attention
    sink whose activation is orders of magnitude larger than the rest (SmolLM2's: norm 25000 against
    150 at block_out of layer 12); a few such rows decided the mean difference and the scale the
    trainer reads off the data. A one-token text keeps its token. ``last``: the last token."""
    if tokens == "last":
        return x[-1:]
    return x[1:] if len(x) > 1 else x


@dataclass
class Activations:
    """``pos[attr]`` and ``neg[attr]`` are float32 CPU tensors [M, D], one row per captured token."""

    site: str
    layer: int
    tokens: str
    attributes: list[str]
    pos: dict[str, torch.Tensor]
    neg: dict[str, torch.Tensor]
    provenance: dict = field(default_factory=dict)

    @property
    def hidden_size(self) -> int:
        return int(next(iter(self.pos.values())).shape[1])

    def rows(self, attribute: str, label: str):
        """The rows of one attribute's positives or negatives, as the trainer reads them."""
        from .rows import TensorRows
        return TensorRows((self.pos if label == "positive" else self.neg)[attribute].float())

    def __repr__(self) -> str:
        counts = ", ".join(f"{a}: {len(self.pos[a])}+/{len(self.neg[a])}-" for a in self.attributes)
        return f"Activations({self.site}@{self.layer}, tokens={self.tokens!r}, D={self.hidden_size}, {counts})"

    def save(self, folder: str | Path) -> None:
        """One safetensors shard per attribute plus ``meta.json``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(self.attributes):
            save_file({"positive": self.pos[a].contiguous(), "negative": self.neg[a].contiguous()},
                      str(folder / f"attr{i:03d}.safetensors"), metadata={"attribute": a})
        meta = dict(version=CACHE_VERSION, site=self.site, layer=self.layer, tokens=self.tokens,
                    attributes=self.attributes, provenance=self.provenance)
        tmp = folder / "meta.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(folder / "meta.json")  # written last: a folder with meta.json is complete

    @classmethod
    def load(cls, folder: str | Path) -> "Activations":
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("version") != CACHE_VERSION:
            raise ValueError(f"{folder}: activation cache version {meta.get('version')}, expected {CACHE_VERSION}")
        pos, neg = {}, {}
        for i, a in enumerate(meta["attributes"]):
            t = load_file(str(folder / f"attr{i:03d}.safetensors"))
            pos[a], neg[a] = t["positive"], t["negative"]
        return cls(meta["site"], meta["layer"], meta["tokens"], meta["attributes"], pos, neg, meta["provenance"])


def model_fingerprint(model: nn.Module) -> str:
    """A digest of the config and a sample of every parameter: two checkpoints with the same name but
    different weights (a retrained toy model) do not share cached activations."""
    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "to_json_string"):
        h.update(cfg.to_json_string(use_diff=False).encode())
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        h.update(name.encode())
        h.update(flat[:: max(1, flat.numel() // 16)][:16].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _model_name(model: nn.Module) -> str:
    cfg = getattr(model, "config", None)
    return str(getattr(cfg, "name_or_path", "") or getattr(cfg, "model_type", "") or type(model).__name__)


def provenance_of(model: nn.Module, examples, max_length: int) -> dict:
    """What identifies collected activations: the model (name, type, weights) and the data."""
    return dict(model_name=_model_name(model), model_type=getattr(model.config, "model_type", None),
                model_fingerprint=model_fingerprint(model), data_hash=data_hash(examples), max_length=max_length)


def collect_activations(model: nn.Module, tokenizer, examples, site: str = "attn_heads", layer: int = 0,
                        tokens: str = "all", batch_size: int = 16, max_length: int = 256,
                        cache_dir: str | Path | None = None, progress: bool = True,
                        arch: models.ArchSpec | None = None) -> Activations:
    """Runs ``model`` over every example's text and captures the activation at (site, layer).

    ``examples``: a list of ``{text, attribute, label}`` dicts or a JSONL path. ``tokens``: ``all``
    (every token but each text's first: see ``kept_rows``) or ``last`` (the last token of each text). With ``cache_dir`` the result
    is stored as safetensors shards and reused when the model, site, layer, token mode and data match.
    """
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; expected one of {', '.join(SITES)}")
    if tokens not in TOKEN_MODES:
        raise ValueError(f"tokens must be 'all' or 'last', got {tokens!r}")
    if batch_size < 1 or max_length < 1:
        raise ValueError(f"batch_size and max_length must be >= 1, got {batch_size} and {max_length}")
    examples = load_examples(examples)
    groups = by_attribute(examples)
    layout = models.resolve(model, arch)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < layout.num_layers:
        raise ValueError(f"layer must be an int in 0..{layout.num_layers - 1} for this "
                         f"{layout.spec.family} model, got {layer!r}")
    provenance = provenance_of(model, examples, max_length)
    cached = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps([site, layer, tokens, provenance, CACHE_VERSION],
                                        sort_keys=True).encode()).hexdigest()[:20]
        cached = Path(cache_dir) / f"acts-{key}"
        if (cached / "meta.json").is_file():
            return Activations.load(cached)

    texts = [t for g in groups.values() for label in LABELS for t in g[label]]
    captured = _capture(model, tokenizer, layout, site, layer, sorted(set(texts)), tokens, batch_size, max_length,
                        progress)
    pos = {a: torch.cat([captured[t] for t in g["positive"]]) for a, g in groups.items()}
    neg = {a: torch.cat([captured[t] for t in g["negative"]]) for a, g in groups.items()}
    acts = Activations(site, layer, tokens, list(groups), pos, neg, provenance)
    if cached is not None:
        acts.save(cached)
    return acts


def text_activations(model: nn.Module, tokenizer, texts: list[str], site: str, layer: int, batch_size: int = 16,
                     max_length: int = 256, arch: models.ArchSpec | None = None) -> dict[str, torch.Tensor]:
    """{text: [tokens, D]}: every token's activation at (site, layer), one row per token of
    ``tokenizer(text)["input_ids"]`` in order (for diagnostics that need to know which token is which)."""
    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; expected one of {', '.join(SITES)}")
    layout = models.resolve(model, arch)
    return _capture(model, tokenizer, layout, site, layer, sorted(set(texts)), "all", batch_size, max_length, False)


class _Captured(Exception):
    """Raised by the capture hook once the site's activation is recorded, to end the forward pass."""


@contextmanager
def site_capture(model, layout, site: str, layer: int, pad_id: int):
    """Within the block, ``run(batch)`` forwards a batch of token-id lists (padded by hand on the
    right; the attention mask excludes the padding, so the tokenizer is never modified) and returns each
    list's [tokens, D] float32 CPU activations at (site, layer)."""
    device = next(model.parameters()).device
    state: dict = {}

    def record(x: torch.Tensor):
        state["x"] = x.detach()
        # nothing after the site changes what was captured: stop the forward there (at layer 12 of
        # SmolLM2's 30 this skips 60% of the work, and the output head's [tokens, vocab] logits)
        raise _Captured

    def run(batch: list) -> list:
        width = max(len(i) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for r, i in enumerate(batch):
            input_ids[r, :len(i)] = torch.tensor(i)
            mask[r, :len(i)] = 1
        with torch.no_grad():
            try:
                model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False)
            except _Captured:
                pass
            if "x" not in state:
                raise RuntimeError(f"the {site} hook at layer {layer} never ran in a forward pass")
        x = state.pop("x").float().cpu().reshape(len(batch), width, -1)  # some families flatten [B*T, D]
        return [x[r, :len(i)].clone() for r, i in enumerate(batch)]

    hook = register_site_hook(layout, site, layer, record)
    was_training = model.training
    model.eval()
    try:
        yield run
    finally:
        hook.remove()
        model.train(was_training)


def _capture(model, tokenizer, layout, site, layer, texts, tokens, batch_size, max_length, progress):
    """{text: [tokens, D] float32 CPU activations} (``tokens="last"``: the last token's alone)."""
    from ..progress import bar as progress_bar

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: dict[str, torch.Tensor] = {}
    # longest first, so the padding within a batch stays small
    order = sorted(texts, key=lambda t: -len(t))
    bar = progress_bar(range(0, len(order), batch_size), desc=f"activations {site}@{layer}", enabled=progress,
                       unit="batch", leave=False)
    with site_capture(model, layout, site, layer, pad_id) as run:
        for start in bar:
            batch = order[start:start + batch_size]
            ids = [tokenizer(t, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
                   for t in batch]
            if any(len(i) == 0 for i in ids):
                raise ValueError("a text tokenized to zero tokens; check the tokenizer and the data")
            for t, rows in zip(batch, run(ids)):
                out[t] = kept_rows(rows, tokens)
    return out
