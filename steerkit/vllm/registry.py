"""Which steering sets an engine serves, and which copies of them hold bank columns, when sets are loaded
and unloaded while it serves. Pure Python: no torch, no vLLM.

A set is loaded under a name; each load of a name makes a new *copy* (``name@N``), so a request admitted
under one copy keeps it when the name is loaded again or unloaded: the front end stamps the copy into the
request at admission (``requests.COPY``), and the workers steer by the copy. Two halves, one per process:

- ``Catalog`` (the front end, where requests are admitted): name -> its current copy and attribute names,
  and the order in which copies were last asked for (the LRU the evictions follow);
- ``Residency`` (the engine core, beside the scheduler, which sees every unfinished request): the copies
  that hold columns, and which to free for a new one: copies no longer current first, then the least
  recently used, never one that an unfinished request was admitted under.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

COPY_SEPARATOR = "@"


def copy_name(name: str, generation: int) -> str:
    """The copy's handle: the set's name alone for the sets an engine starts with (generation 0), so an
    engine that loads nothing while serving steers by the names it always has."""
    return name if generation == 0 else f"{name}{COPY_SEPARATOR}{generation}"


@dataclass(frozen=True)
class Copy:
    handle: str
    name: str
    attributes: tuple


# a copy stamped on a request this recently may be on its way to the engine core (admission and the send
# are apart, in another thread), where nothing yet shows it in use: it is not freed yet (an unload leaves it
# retiring, freed by the next load, unload or listing after this long)
IN_FLIGHT_SECONDS = 10.0


class Catalog:
    """The front end's view: the sets a request may name, each by its current copy. Admission runs in
    vLLM's input threads and loads in the server's event loop, so every method holds one lock."""

    def __init__(self, sets: dict, clock=time.monotonic):
        """``sets``: {name: attribute names} of the sets the engine started with."""
        self.lock = threading.RLock()
        self._clock = clock
        self._current: dict[str, Copy] = {}
        self._generation: dict[str, int] = {}
        self._used: OrderedDict[str, float] = OrderedDict()  # resident copies -> last asked for, oldest first
        for name, attributes in sets.items():
            self._add(Copy(copy_name(name, 0), name, tuple(attributes)), 0)

    def _add(self, copy: Copy, generation: int) -> None:
        self._current[copy.name] = copy
        self._generation[copy.name] = generation
        self._used[copy.handle] = self._clock()

    def attributes(self) -> dict:
        """{name: attribute names} of the sets a request may name now."""
        with self.lock:
            return {name: c.attributes for name, c in self._current.items()}

    def current(self) -> dict:
        """{name: its current copy}."""
        with self.lock:
            return dict(self._current)

    def resolve(self, name: str) -> Copy:
        """The copy a request naming ``name`` is admitted under (KeyError when none); it becomes the most
        recently used."""
        with self.lock:
            copy = self._current[name]
            self._used[copy.handle] = self._clock()
            self._used.move_to_end(copy.handle)
            return copy

    def in_flight(self) -> set:
        """Copies stamped on a request in the last IN_FLIGHT_SECONDS: in use, whatever the engine says."""
        with self.lock:
            now = self._clock()
            return {h for h, t in self._used.items() if now - t < IN_FLIGHT_SECONDS}

    def next_copy(self, name: str, attributes) -> Copy:
        """The copy a load of ``name`` will make (nothing changes until ``loaded``)."""
        with self.lock:
            return Copy(copy_name(name, self._generation.get(name, -1) + 1), name, tuple(attributes))

    def eviction_order(self) -> list:
        """Resident copies, the ones to free first first: copies no longer current, then by last use."""
        with self.lock:
            current = {c.handle for c in self._current.values()}
            return sorted(self._used, key=lambda h: h in current)  # stable: LRU order within each kind

    def loaded(self, copy: Copy, freed: list) -> list:
        """Records a load the engine made, with the copies it freed for it; returns the names that went
        with them (a current copy freed for room: that name is no longer served)."""
        with self.lock:
            generation = self._generation.get(copy.name, -1) + 1
            if copy.handle != copy_name(copy.name, generation):
                raise RuntimeError(f"steerkit: load of {copy.handle} recorded out of order")
            gone = self._forget(freed)
            self._add(copy, generation)
            return gone

    def unloaded(self, name: str) -> Copy:
        """Takes ``name`` out of what requests may name; returns the copy it had (still resident until the
        engine frees it). KeyError when no set has that name."""
        with self.lock:
            return self._current.pop(name)

    def freed(self, handles: list) -> list:
        """Records copies the engine freed; returns the names that went with them."""
        with self.lock:
            return self._forget(handles)

    def _forget(self, handles) -> list:
        gone = []
        for h in handles:
            self._used.pop(h, None)
            for name, c in list(self._current.items()):
                if c.handle == h:
                    del self._current[name]
                    gone.append(name)
        return gone


class Residency:
    """The engine core's view: the copies that hold columns in every worker's bank."""

    def __init__(self, resident: dict, max_sets: int, columns: int):
        """``resident``: {handle: K} of the copies the engine started with."""
        self.max_sets, self.columns = max_sets, columns
        self._k = dict(resident)

    def resident(self) -> dict:
        return dict(self._k)

    def free_columns(self) -> int:
        return self.columns - sum(self._k.values())

    def plan(self, handle: str, k: int, order: list, in_use: set) -> list:
        """The copies to free, in ``order`` (the catalog's eviction order), so that ``handle`` with ``k``
        columns fits: never one in ``in_use`` (the copies unfinished requests were admitted under).
        Raises ValueError (one line) when no plan frees enough; plans nothing else."""
        if handle in self._k:
            raise ValueError(f"steering set copy {handle!r} is already resident")
        if k > self.columns:
            raise ValueError(f"a set of {k} attributes: the engine holds {self.columns} columns in all")
        free_sets, free_cols = self.max_sets - len(self._k), self.free_columns()
        plan = []
        for h in order:
            if free_sets >= 1 and free_cols >= k:
                break
            if h in self._k and h not in in_use and h not in plan:
                plan.append(h)
                free_sets, free_cols = free_sets + 1, free_cols + self._k[h]
        if free_sets < 1 or free_cols < k:
            busy = sorted(h for h in self._k if h in in_use)
            raise ValueError(f"no room for a set of {k} attributes: {len(self._k)} of {self.max_sets} sets and "
                             f"{self.columns - self.free_columns()} of {self.columns} columns resident, and "
                             f"{len(busy)} of them in use by unfinished requests ({', '.join(busy[:4])}"
                             f"{', ...' if len(busy) > 4 else ''}); try again when they finish")
        return plan

    def apply(self, handle: str, k: int, freed: list) -> None:
        """Records what the workers did for a plan: ``freed`` out, ``handle`` in."""
        for h in freed:
            del self._k[h]
        self._k[handle] = k

    def release(self, handles, in_use: set) -> list:
        """The copies among ``handles`` that no unfinished request uses, taken out (to free them)."""
        out = [h for h in handles if h in self._k and h not in in_use]
        for h in out:
            del self._k[h]
        return out
