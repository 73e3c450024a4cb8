"""Activations streamed to disk: safetensors shards with a JSON index, so collection holds one shard in
memory, resumes where it stopped, and splits across ``torchrun`` ranks.

The shard plan depends only on the data and ``shard_tokens``: examples in file order, packed into
shards of about ``shard_tokens`` captured rows. Shard i goes to rank ``i % world``, so one process and N
processes write the same files, and rank 0 writes the index once every shard is there. A shard is
written to ``NAME.tmp`` and renamed, so a process killed mid-write leaves no shard under its final name;
on a rerun a leftover ``.tmp`` is removed and a shard that does not open or holds the wrong examples is
redone, never read.

Each shard holds ``acts`` [rows, D] float32 and ``example`` [rows] (the example index of each row). The
index records site, layer, token mode, the model's provenance, each example's attribute and label, and
each shard's example range and row count.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .. import models
from ..launch import join_process_group
from ..vectors import SITES
from .collect import kept_rows
from .data import LABELS, load_examples

INDEX = "index.json"
FORMAT, VERSION = "steerkit.activation-shards", 1


def plan(token_counts: list, shard_tokens: int) -> list:
    """[(first example, end example)] per shard: consecutive examples until ``shard_tokens`` rows."""
    shards, start, rows = [], 0, 0
    for i, n in enumerate(token_counts):
        if rows and rows + n > shard_tokens:
            shards.append((start, i))
            start, rows = i, 0
        rows += n
    if start < len(token_counts):
        shards.append((start, len(token_counts)))
    return shards


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def _shard_is_complete(path: Path, start: int, end: int) -> bool:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            example = f.get_tensor("example")
            f.get_slice("acts")
    except Exception:  # noqa: BLE001 - torn or foreign: redo it
        return False
    return meta.get("start") == str(start) and meta.get("end") == str(end) and (
        len(example) == 0 or (int(example.min()) >= start and int(example.max()) < end))


def collect_shards(model, tokenizer, examples, out, site: str = "attn_heads", layer: int = 0, tokens: str = "all",
                   shard_tokens: int = 65536, batch_size: int = 16, max_length: int = 256, progress: bool = True,
                   arch: models.ArchSpec | None = None) -> Path:
    """Captures (site, layer) activations of every example into shards under ``out``; returns the index
    path. Under ``torchrun`` each rank writes its own shards. A rerun skips the finished shards."""
    from ..progress import bar as progress_bar

    from .collect import TOKEN_MODES, provenance_of, site_capture

    if site not in SITES:
        raise ValueError(f"unknown site {site!r}; expected one of {', '.join(SITES)}")
    if tokens not in TOKEN_MODES:
        raise ValueError(f"tokens must be 'all' or 'last', got {tokens!r}")
    if shard_tokens < 1 or batch_size < 1 or max_length < 1:
        raise ValueError("shard_tokens, batch_size and max_length must be >= 1")
    examples = load_examples(examples)
    layout = models.resolve(model, arch)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < layout.num_layers:
        raise ValueError(f"layer must be an int in 0..{layout.num_layers - 1}, got {layer!r}")
    out = Path(out)
    rank, world = join_process_group()
    out.mkdir(parents=True, exist_ok=True)
    ids = [tokenizer(e.text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
           for e in examples]
    if any(len(i) == 0 for i in ids):
        raise ValueError("a text tokenized to zero tokens; check the tokenizer and the data")
    shards = plan([len(kept_rows(torch.empty(len(i), 0), tokens)) for i in ids], shard_tokens)
    mine = [s for s in range(len(shards)) if s % world == rank]
    todo = []
    for s in mine:
        path = out / shard_name(s)
        Path(str(path) + ".tmp").unlink(missing_ok=True)
        if not (path.is_file() and _shard_is_complete(path, *shards[s])):
            todo.append(s)
    provenance = provenance_of(model, examples, max_length)
    bar = progress_bar(total=sum(shards[s][1] - shards[s][0] for s in todo), desc=f"collect {site}@{layer}", unit="text",
                       enabled=progress and rank == 0)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    pause = float(os.environ.get("STEERKIT_SLOW_SHARDS", "0"))  # tests: time to kill a run between shards
    with site_capture(model, layout, site, layer, pad_id) as run:
        for s in todo:
            _write_shard(run, tokens, ids, shards[s], batch_size, out / shard_name(s), bar)
            if pause:
                time.sleep(pause)
    bar.close()
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    index = out / INDEX
    if rank == 0:
        missing = [s for s in range(len(shards)) if not _shard_is_complete(out / shard_name(s), *shards[s])]
        if missing:
            raise RuntimeError(f"collect: shards {missing} are missing or torn after collection")
        counts = {}
        for s, (a, b) in enumerate(shards):
            from safetensors import safe_open
            with safe_open(str(out / shard_name(s)), framework="pt") as f:
                counts[s] = f.get_slice("acts").get_shape()[0]
        entry = {"format": FORMAT, "version": VERSION, "site": site, "layer": layer, "tokens": tokens,
                 "provenance": provenance, "shard_tokens": shard_tokens,
                 "examples": [[e.attribute, e.label] for e in examples],
                 "shards": [{"file": shard_name(s), "start": a, "end": b, "rows": counts[s]}
                            for s, (a, b) in enumerate(shards)]}
        tmp = out / (INDEX + ".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(index)  # written last: a folder with index.json is complete
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
    return index


def _write_shard(run, tokens, ids, span, batch_size, path, bar) -> None:
    from safetensors.torch import save_file

    rows, owners = [], []
    for b0 in range(span[0], span[1], batch_size):
        batch = ids[b0:min(b0 + batch_size, span[1])]
        for r, x in enumerate(run(batch)):
            keep = kept_rows(x, tokens)
            rows.append(keep)
            owners.append(torch.full((len(keep),), b0 + r, dtype=torch.long))
        bar.update(len(batch))
    tmp = Path(str(path) + ".tmp")
    save_file({"acts": torch.cat(rows).contiguous(), "example": torch.cat(owners)}, str(tmp),
              metadata={"start": str(span[0]), "end": str(span[1])})
    os.replace(tmp, path)


class ActivationShards:
    """A shard folder written by ``collect_shards``: its index, and its rows read one shard at a time."""

    def __init__(self, folder):
        self.folder = Path(folder)
        index = self.folder / INDEX
        if not index.is_file():
            raise ValueError(f"{self.folder}: no {INDEX}; collection did not finish (rerun it to resume)")
        meta = json.loads(index.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError(f"{index}: not a steerkit activation-shard index of version {VERSION}")
        self.site, self.layer, self.tokens = meta["site"], meta["layer"], meta["tokens"]
        self.provenance = meta["provenance"]
        self.examples = [tuple(e) for e in meta["examples"]]
        self.shards = meta["shards"]
        self.attributes = list(dict.fromkeys(a for a, _ in self.examples))

    def __len__(self) -> int:
        return sum(s["rows"] for s in self.shards)

    @property
    def hidden_size(self) -> int:
        from .rows import data_offset
        return int(data_offset(self.folder / self.shards[0]["file"], "acts")[1][1])

    def __repr__(self) -> str:
        return (f"ActivationShards({self.site}@{self.layer}, tokens={self.tokens!r}, D={self.hidden_size}, "
                f"{len(self)} rows in {len(self.shards)} shards at {self.folder})")

    def rows(self, attribute: str, label: str):
        """The rows of one attribute's positives or negatives, read from the shards on demand."""
        import numpy as np

        from .rows import ShardRows
        if attribute not in self.attributes or label not in LABELS:
            raise ValueError(f"no rows for ({attribute!r}, {label!r}); attributes: {self.attributes}")
        if not hasattr(self, "_owners"):
            self._owners = []
            for s in self.shards:
                from safetensors import safe_open
                path = self.folder / s["file"]
                if not _shard_is_complete(path, s["start"], s["end"]):
                    raise ValueError(f"{path}: missing or torn; rerun the collection to redo it")
                with safe_open(str(path), framework="pt") as f:
                    self._owners.append(f.get_tensor("example").numpy())
        wanted = np.array([e == (attribute, label) for e in self.examples] + [False])
        shard_ids, row_ids = [], []
        for k, owners in enumerate(self._owners):
            hit = np.nonzero(wanted[owners])[0]
            shard_ids.append(np.full(len(hit), k, dtype=np.int32))
            row_ids.append(hit.astype(np.int64))
        return ShardRows([self.folder / s["file"] for s in self.shards], np.concatenate(shard_ids),
                         np.concatenate(row_ids), self.hidden_size)

    def iter_shards(self):
        """(acts [rows, D], example [rows]) per shard, in order; one shard in memory at a time."""
        from safetensors.torch import load_file
        for s in self.shards:
            path = self.folder / s["file"]
            if not _shard_is_complete(path, s["start"], s["end"]):
                raise ValueError(f"{path}: missing or torn; rerun the collection to redo it")
            t = load_file(str(path))
            if len(t["acts"]) != s["rows"]:
                raise ValueError(f"{path}: {len(t['acts'])} rows, the index says {s['rows']}")
            yield t["acts"], t["example"]

    def to_activations(self):
        """Every row in memory, split by attribute and label: an ``Activations``."""
        from .collect import Activations
        pos = {a: self.rows(a, "positive").all() for a in self.attributes}
        neg = {a: self.rows(a, "negative").all() for a in self.attributes}
        return Activations(self.site, self.layer, self.tokens, self.attributes, pos, neg, dict(self.provenance))
