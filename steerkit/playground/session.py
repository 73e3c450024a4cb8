"""What the playground does with the model, apart from the web: checked requests in, events out.

A generation is one ``greedy_ids`` call (the function ``steerkit generate`` uses) on the prompt twice,
under one patch with a per-row strength ([2, K]: row 0 all zeros, row 1 the sliders), so both columns come
from one batched forward per step. A ``Steering.watch`` recorder reads each step's gates, and a streamer
hands each step's tokens to the caller as they come.

Everything that touches the model runs on one thread of its own, one job at a time (``call``). That is the
lock, and it is also for speed: each thread that runs torch's CPU kernels gets its own OpenMP team, whose
workers spin for a while after every parallel region; generating on a new thread per request made a
SmolLM2 stream about 18% slower than the same generation on the main thread, on 2 cores.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import torch

from ..gateview.trace import Recorder, read_tokens, token_texts
from ..generate import encode_prompts, greedy_ids
from ..patching import patch, steer
from ..strengths import strength_values
from ..vectors import SteeringVectors

MAX_NEW_TOKENS = 512
SWEEP = (0.0, 0.5, 1.0, 1.5, 2.0)  # multiples of the sliders' strengths in the sweep view


class _Stopped(Exception):
    """The reader went away (a closed page): generation stops at the next step."""


class _Streamer:
    """What ``generate`` tells a streamer: the prompt ids once, then each step's [B] tokens."""

    def __init__(self, out: queue.Queue, stop: threading.Event):
        self.out, self.stop, self.seen_prompt = out, stop, False

    def put(self, ids) -> None:
        if self.stop.is_set():
            raise _Stopped()
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        self.out.put(("step", ids.reshape(-1).tolist()))

    def end(self) -> None:
        pass


def _has_chat(tokenizer) -> bool:
    from ..hf import check_chat

    try:
        check_chat(tokenizer)
    except ValueError:
        return False
    return True


class Playground:
    """A model, its tokenizer and a vector file, served one generation at a time on the model's thread."""

    def __init__(self, model, tokenizer, vectors: SteeringVectors | str | Path, chat: bool | None = None,
                 max_new_tokens: int = 64, name: str = "model"):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.chat = _has_chat(tokenizer) if chat is None else chat
        if self.chat and not _has_chat(tokenizer):
            raise ValueError("chat: this tokenizer has no chat template")
        self.max_new_tokens = max_new_tokens
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="steerkit-playground")
        self.vectors: SteeringVectors | None = None
        self.vectors_path = None
        self.set_vectors(vectors)

    # -- vectors -------------------------------------------------------------------------------
    def set_vectors(self, vectors: SteeringVectors | str | Path) -> None:
        """A vector file (path) or ``SteeringVectors``; one made for another model is refused in one line
        and the current one stays."""
        path = None
        if not isinstance(vectors, SteeringVectors):
            if not isinstance(vectors, (str, Path)) or not str(vectors).strip():
                raise ValueError(f"vectors: expected the path of a vector file, got {vectors!r}")
            path = str(vectors).strip()
            vectors = SteeringVectors.load(path)
        def swap():
            patch(self.model, vectors, strength=0.0).remove()  # refuses what does not fit, changes nothing
            self.vectors, self.vectors_path = vectors, path

        self.call(swap)

    def call(self, fn, *args):
        """``fn(*args)`` on the model's thread, after the jobs before it; its result (or its exception)."""
        return self._worker.submit(fn, *args).result()

    def info(self) -> dict:
        v = self.vectors
        suggested = v.provenance.get("suggested_strength")
        if not isinstance(suggested, list) or len(suggested) != v.num_attributes:
            suggested = [float(suggested or 1.0)] * v.num_attributes
        from ..steerbench.judges import JUDGES

        places = v.provenance.get("place_chosen_by") or {}
        return dict(
            model=self.name, chat=self.chat, max_new_tokens=self.max_new_tokens, vectors=self.vectors_path,
            attributes=[dict(name=a, suggested=s, min=0.0, max=_slider_max(s), judge=a in JUDGES)
                        for a, s in zip(v.attributes, suggested)],
            lanes=[dict(attribute=a, place=f"{site}@{layer}") for site, layer in _places(v) for a in v.attributes],
            places=dict(chosen=places.get("place"), how=places.get("how"), scores=places.get("score") or {}),
            suggested_for=v.provenance.get("suggested_for"), sweep=list(SWEEP),
        )

    # -- requests ------------------------------------------------------------------------------
    def check_request(self, payload) -> tuple[str, list[float], int]:
        """(prompt, one strength per attribute, max new tokens) from a request's JSON; one line naming what is
        wrong otherwise. Strengths: {attribute: number}, attributes left out are 0."""
        if not isinstance(payload, dict):
            raise ValueError("request: expected a JSON object with prompt and strength")
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt: expected a non-empty text")
        strength = payload.get("strength", {})
        values = strength_values(strength, self.vectors.attributes, "strength")
        values = [values] * self.vectors.num_attributes if isinstance(values, float) else values
        n = payload.get("max_new_tokens", self.max_new_tokens)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_NEW_TOKENS:
            raise ValueError(f"max_new_tokens: expected a whole number from 1 to {MAX_NEW_TOKENS}, got {n!r}")
        return prompt, values, n

    def stream(self, prompt: str, values: list[float], max_new_tokens: int) -> Iterator[dict]:
        """Events of one generation of the unsteered (row 0) and the steered (row 1) answer: ``prompt``
        (its tokens and their gates), one ``token`` per step (each row's new text, and the gates of the token
        before, which this step read), then ``done`` with both texts as ``greedy_ids`` returns them (or
        ``error``). Closing the iterator stops the generation at its next step."""
        q: queue.Queue = queue.Queue()
        stop = threading.Event()
        vectors = self.vectors
        strength = torch.zeros(2, vectors.num_attributes)
        strength[1] = torch.tensor(values)
        state = {}

        def run():
            try:
                with steer(self.model, vectors, strength=strength) as handle:
                    rec = Recorder(handle.steering, 2)
                    state["recorder"] = rec
                    watching = handle.steering.watch(rec)
                    try:
                        t0 = time.perf_counter()
                        rows, _ = greedy_ids(self.model, self.tokenizer, [prompt, prompt], max_new_tokens, self.chat,
                                             streamer=_Streamer(q, stop))
                        seconds = time.perf_counter() - t0
                    finally:
                        watching.remove()
                q.put(("done", rows, seconds))
            except _Stopped:
                q.put(("stopped",))
            except Exception as err:  # shown in the page in one line; the server keeps serving
                q.put(("error", f"{type(err).__name__}: {err}".splitlines()[0]))

        self._worker.submit(run)
        try:
            yield from self._events(q, vectors, prompt, state)
        finally:
            stop.set()

    def _events(self, q: queue.Queue, vectors, prompt: str, state: dict) -> Iterator[dict]:
        tok = self.tokenizer
        places = _places(vectors)
        stops = {tok.eos_token_id, tok.pad_token_id} - {None}
        prompt_ids = encode_prompts(tok, [prompt], self.chat)["input_ids"][0].tolist()
        ids: list[list[int]] = [[], []]
        done = [False, False]
        step = 0
        while True:
            item = q.get()
            if item[0] == "error":
                yield dict(type="error", message=item[1])
                return
            if item[0] == "stopped":
                return
            if item[0] == "done":
                rows, seconds = item[1], item[2]
                n = sum(map(len, rows))
                yield dict(type="done", texts=[tok.decode(r, skip_special_tokens=True) for r in rows],
                           tokens=n, seconds=seconds, tokens_per_second=n / max(seconds, 1e-9))
                return
            rec = state["recorder"]
            # this step's forward read the prompt (step 0) or the token the step before made
            read = [torch.cat([rec.calls[key][step][0][b] for key in places], -1) for b in range(2)]  # [t, lanes]
            if step == 0:
                yield dict(type="prompt", tokens=token_texts(tok, prompt_ids),
                           gates=[_rounded(read[b][-len(prompt_ids):]) for b in range(2)])
            rows = []
            for b, t in enumerate(item[1]):
                row = dict(gates_of=None, gates=None, index=None, text=None)
                if step > 0 and not done[b] and len(ids[b]) == step:  # the previous token was this row's
                    row.update(gates_of=step - 1, gates=_rounded(read[b][-1:])[0])
                if not done[b]:
                    if t in stops:
                        done[b] = True
                    else:
                        before = tok.decode(ids[b]) if ids[b] else ""
                        ids[b].append(t)
                        text = tok.decode(ids[b])
                        row.update(index=len(ids[b]) - 1,
                                   text=text[len(before):] if text.startswith(before) else tok.decode([t]))
                rows.append(row)
            yield dict(type="token", step=step, rows=rows)
            step += 1

    def sweep(self, prompt: str, values: list[float], max_new_tokens: int) -> dict:
        """The prompt at each multiple in ``SWEEP`` of the given strengths, in one batch (a row each): the
        text, its ΔNLL per token under the unsteered model against the unsteered row, and each attribute's
        judge where it has one."""
        from ..steerbench.judges import JUDGES

        vectors = self.vectors
        strength = torch.tensor([[m * v for v in values] for m in SWEEP])

        def run():
            with steer(self.model, vectors, strength=strength):
                rows, _ = greedy_ids(self.model, self.tokenizer, [prompt] * len(SWEEP), max_new_tokens, self.chat)
            prompt_ids = encode_prompts(self.tokenizer, [prompt], self.chat)["input_ids"][0].tolist()
            nll = []
            for row in rows:
                _, per_token = read_tokens(self.model, vectors, _places(vectors), prompt_ids + row)
                cont = per_token[len(prompt_ids):]
                nll.append(float(cont.mean()) if cont.numel() else float("nan"))
            return rows, nll

        rows, nll = self.call(run)
        texts = [self.tokenizer.decode(r, skip_special_tokens=True) for r in rows]
        judged, notes = {}, []
        for a in vectors.attributes:
            if a in JUDGES:
                try:
                    judged[a] = [float(x) for x in JUDGES[a](texts)]
                except ImportError as err:
                    notes.append(f"{a}: judge unavailable ({err})")
        return dict(rows=[dict(multiple=m, strength=[m * v for v in values], text=t,
                               delta_nll=None if math.isnan(x - nll[0]) else x - nll[0],
                               judge={a: s[i] for a, s in judged.items()})
                          for i, (m, t, x) in enumerate(zip(SWEEP, texts, nll))], notes=notes)


def _places(vectors: SteeringVectors) -> list[tuple[str, int]]:
    return sorted(vectors, key=lambda key: (key[1], key[0]))


def _slider_max(suggested: float) -> float:
    """Twice the suggested strength, rounded up to a whole number (at least 1)."""
    return float(max(1, math.ceil(2 * abs(suggested))))


def _rounded(gates: torch.Tensor) -> list[list[float]]:
    return [[round(float(g), 4) for g in row] for row in gates]
