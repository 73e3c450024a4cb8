"""JSONL files: one JSON object per line, read with errors that name the file and the line."""
from __future__ import annotations

import json
from pathlib import Path


def read_jsonl(path: str | Path) -> list:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {n}: not JSON ({err.msg})") from None
    return rows
