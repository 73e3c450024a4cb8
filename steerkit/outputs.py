"""Where a job will write, checked before the job starts: a long run must not end in a crash because
its output folder is missing."""
from __future__ import annotations

import os
from pathlib import Path


def _writable_folder(folder: Path, arg: str, what: str) -> None:
    if not folder.is_dir():
        raise ValueError(f"{arg}: cannot write {what}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{arg}: cannot write {what}: folder {folder} is not writable")


def check_output_file(path: str | os.PathLike, arg: str) -> Path:
    """``path`` can be written as a file: its folder exists and is writable, and it is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{arg}: {path} is a folder; expected a file name")
    _writable_folder(path.parent if str(path.parent) else Path("."), arg, path.name)
    return path


def check_output_dir(path: str | os.PathLike, arg: str) -> Path:
    """``path`` can be used as an output folder: it is one already, or its parent exists and is writable."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{arg}: {path} exists and is not a folder")
        _writable_folder(path, arg, "into it")
    else:
        _writable_folder(path.parent if str(path.parent) else Path("."), arg, path.name)
    return path
