"""Progress bars that suit where stderr goes: tqdm's bar on a terminal; elsewhere (a log file, CI)
one plain line at each tenth of the way, since a bar's carriage-return redraws fill a log with
thousands of lines."""
from __future__ import annotations

import sys
import time


def bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True,
        leave: bool = True):
    """An iterable with ``update`` and ``set_postfix``, like ``tqdm``'s. ``enabled=False``: silent."""
    if enabled and sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return _Lines(iterable, total, desc, unit, enabled)


class _Lines:
    """Prints ``desc: done/total unit (postfix)`` when another tenth is done, and at the end."""

    def __init__(self, iterable, total, desc, unit, enabled):
        self.iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self.done, self.printed, self.postfix, self.t0 = 0, -1, "", time.perf_counter()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        tenth = 10 * self.done // self.total if self.total else self.printed + 1
        if tenth > self.printed or self.done == self.total:
            self.printed = tenth
            total = f"/{self.total}" if self.total else ""
            post = f" ({self.postfix})" if self.postfix else ""
            print(f"{self.desc}: {self.done}{total} {self.unit} in {time.perf_counter() - self.t0:.0f} s{post}",
                  file=sys.stderr, flush=True)

    def set_postfix(self, values: dict) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
