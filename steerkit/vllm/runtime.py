"""Steering sets loaded, listed and unloaded while an engine serves: over HTTP (``SteeringSetsEndpoints``,
the ``vllm.endpoint_plugins`` entry ``steerkit_sets``) and offline (``load_set``, ``unload_set`` and
``steering_sets`` on an ``LLM``).

An engine takes sets while it serves only where it was started with room for them
(``additional_config={"steerkit": {"room": {...}}}``, ``requests.Room``). A load reads the file (safetensors
or GGUF: no code runs from it) and checks it against the served model before anything changes; the
engine core then frees what the load needs (copies no longer current first, then the least recently used,
never one an unfinished request was admitted under) and every worker writes the new copy in place. A name
loaded again makes a new copy; requests admitted before keep the old one until they finish.

vLLM loads an endpoint plugin only where ``VLLM_PLUGINS`` names it (and then only the plugins it names,
so name steerkit's general plugin too): ``VLLM_PLUGINS=steerkit,steerkit_sets``.
"""
# no ``from __future__ import annotations``: FastAPI reads the routes' annotations (``Request``, imported
# where the routes are made, since fastapi comes with vLLM, not with steerkit) as objects
import asyncio
import json
import os

from . import hooks
from .registry import COPY_SEPARATOR
from .requests import CONFIG_KEY, PATH, PATH_PREFIX, VECTORS, PluginConfig

SUFFIXES = (".safetensors", ".gguf")

_FAILED = f"Call to {hooks.ENGINE_METHOD} method failed: "


class SetControl:
    """The front end's side of loading: one load or unload at a time, the catalog updated only with what
    the engine did. ``call(op, *args)``: a coroutine running ``EngineCore.steerkit_sets``."""

    def __init__(self, vllm_config, call):
        self.config = PluginConfig.from_additional(vllm_config.additional_config)
        self.catalog = hooks.catalog(vllm_config)
        self.facts = hooks.model_facts(vllm_config.model_config)
        self._call = call
        self._lock = asyncio.Lock()
        self._by_path = asyncio.Lock()  # one load per file, however many requests name it at once

    def _check_room(self) -> None:
        if self.config is None or self.config.room is None:
            raise ValueError("this engine was started without room for steering sets loaded while serving; start "
                             f'it with additional_config={{"{CONFIG_KEY}": {{"room": {{"places": ["block_out:12"]}}}}}}')

    async def _engine(self, op: str, *args):
        try:
            return await self._call(op, *args)
        except Exception as e:  # noqa: BLE001 - the engine core's refusal comes back as a message
            raise ValueError(str(e).removeprefix(_FAILED).strip().splitlines()[-1]) from None

    async def load(self, name, path) -> dict:
        """Loads the set in ``path`` under ``name`` (a new copy if the name is served already)."""
        self._check_room()
        if not isinstance(name, str) or not name or COPY_SEPARATOR in name or name.startswith(PATH_PREFIX):
            raise ValueError(f'name: expected a non-empty string without "{COPY_SEPARATOR}", not starting with '
                             f'"{PATH_PREFIX}" (the sets requests load by path), got {name!r}')
        return await self._load(name, path)

    async def _load(self, name, path) -> dict:
        if not isinstance(path, str) or not path:
            raise ValueError(f"path: expected the path of a .safetensors or .gguf steering set, got {path!r}")
        vecs = await asyncio.to_thread(hooks.load_set, name, path, *self.facts)
        async with self._lock:
            copy = self.catalog.next_copy(name, vecs.attributes)
            freed = await self._engine("load", copy.handle, path, len(vecs.attributes),
                                       self.catalog.eviction_order(), sorted(self.catalog.in_flight()))
            gone = self.catalog.loaded(copy, freed)
        return {"name": name, "copy": copy.handle, "attributes": list(copy.attributes), "freed": freed,
                "no_longer_served": gone}

    async def by_path(self, path) -> str:
        """The name of the set in the file ``path`` (relative to the room's ``load_from`` folder), loaded
        first if it is not served: ``path:<the file, relative>``. A request names it with ``steerkit_path``.
        Refused (ValueError): a server without ``load_from``, a path outside it or of another kind of file."""
        room = self.config.room if self.config is not None else None
        if room is None or room.load_from is None:
            raise ValueError(f"{PATH}: this server loads no steering set named by its path; start it with "
                             f'additional_config={{"{CONFIG_KEY}": {{"room": {{"load_from": FOLDER}}}}}}')
        if not isinstance(path, str) or not path.endswith(SUFFIXES):
            raise ValueError(f"{PATH}: expected a .safetensors or .gguf file under the server's load_from folder, "
                             f"got {path!r}")
        full = os.path.realpath(os.path.join(room.load_from, path))
        relative = os.path.relpath(full, room.load_from)
        if relative.startswith(os.pardir) or os.path.isabs(relative) or COPY_SEPARATOR in relative:
            raise ValueError(f"{PATH}: {path!r} is not a file under the server's load_from folder (without "
                             f'"{COPY_SEPARATOR}")')
        name = PATH_PREFIX + relative
        async with self._by_path:
            if name not in self.catalog.current():
                try:
                    await self._load(name, full)
                except ValueError as e:  # the file's own refusal, said for the request's key
                    raise ValueError(f"{PATH}: {e}".replace(full, path)) from None
        return name

    async def unload(self, name) -> dict:
        """Stops serving ``name``; its copy is freed once no unfinished request uses it. KeyError when no
        set has that name."""
        self._check_room()
        async with self._lock:
            copy = self.catalog.unloaded(name)
            freed = await self._release()
        return {"name": name, "copy": copy.handle, "freed": freed, "retiring": copy.handle not in freed}

    async def _release(self) -> list:
        current = {c.handle for c in self.catalog.current().values()}
        stale = [h for h in self.catalog.eviction_order() if h not in current]
        if not stale:
            return []
        freed = await self._engine("release", stale, sorted(self.catalog.in_flight()))
        self.catalog.freed(freed)
        return freed

    async def state(self) -> dict:
        """The sets served, the copies resident (retiring ones too) and, per worker, its bank."""
        if self.config is None:
            return {"sets": {}}
        if self.config.room is None:
            return {"sets": {n: {"copy": c.handle, "attributes": list(c.attributes)}
                             for n, c in self.catalog.current().items()}, "room": None}
        async with self._lock:
            await self._release()
            engine = await self._engine("state")
        return {"sets": {n: {"copy": c.handle, "attributes": list(c.attributes)}
                         for n, c in self.catalog.current().items()},
                "room": {"sets": self.config.room.sets, "columns": self.config.room.columns},
                **engine}


class _LoadByPath:
    """ASGI middleware on the completion routes: a request whose ``vllm_xargs`` name a set by its file
    (``steerkit_path``) gets the set loaded (once; ``SetControl.by_path``) and its name written in
    (``steerkit_vectors``) before vLLM reads the body; a refusal is vLLM's 400 error body. Other requests,
    and every request to a server without ``load_from``, pass untouched (their body is not read here)."""

    ROUTES = ("/v1/completions", "/v1/chat/completions")

    def __init__(self, app, control):
        self.app, self.control = app, control

    async def __call__(self, scope, receive, send):
        control = self.control()
        room = control.config.room if control is not None and control.config is not None else None
        if (scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.ROUTES
                or room is None or room.load_from is None):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body came
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            body = await self._named(control, body)
        except ValueError as e:
            from fastapi.responses import JSONResponse

            error = {"message": str(e), "type": "BadRequestError", "param": None, "code": 400}
            return await JSONResponse({"error": error}, 400)(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        scope = dict(scope, headers=headers + [(b"content-length", str(len(body)).encode())])
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # what follows the body: a disconnect, which a stream listens for
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.app(scope, replay, send)

    @staticmethod
    async def _named(control, body: bytes) -> bytes:
        """``body`` with ``steerkit_path`` replaced by the name of the set loaded from it (unchanged where
        it names none, or is not JSON: vLLM answers that)."""
        try:
            data = json.loads(body)
        except ValueError:
            return body
        xargs = data.get("vllm_xargs") if isinstance(data, dict) else None
        if not isinstance(xargs, dict) or PATH not in xargs:
            return body
        if VECTORS in xargs:
            raise ValueError(f"{PATH}: give one of {PATH} and {VECTORS}, not both")
        xargs = dict(xargs)
        xargs[VECTORS] = await control.by_path(xargs.pop(PATH))
        return json.dumps({**data, "vllm_xargs": xargs}).encode()


class SteeringSetsEndpoints:
    """``POST /v1/steerkit/load_set`` ``{"name": ..., "path": ...}``, ``POST /v1/steerkit/unload_set``
    ``{"name": ...}`` and ``GET /v1/steerkit/sets``; and, where the room has ``load_from``, requests that
    name a set by its file there (``steerkit_path``, ``_LoadByPath``). A refusal is a 400 (404 for a name
    not served) with one line naming what is wrong; the server keeps serving."""

    name = "steerkit_sets"
    required_tasks = ("generate",)

    def __init__(self):
        self.control = None
        self.why = "steerkit: this server has no engine to load steering sets into"

    def attach_router(self, app) -> None:
        from fastapi import APIRouter, Request
        from fastapi.responses import JSONResponse

        router = APIRouter()

        async def run(action, *args):
            if self.control is None:
                return JSONResponse({"error": self.why}, 400)
            try:
                return JSONResponse(await action(*args))
            except KeyError as e:
                return JSONResponse({"error": f"name: no steering set {e.args[0]!r} is served"}, 404)
            except ValueError as e:
                return JSONResponse({"error": str(e)}, 400)

        async def body(raw: Request, *keys) -> tuple:
            try:
                data = await raw.json()
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object with {', '.join(keys)}")
            unknown = sorted(set(data) - set(keys))
            if unknown:
                raise ValueError(f"unknown keys {unknown}; expected {', '.join(keys)}")
            return tuple(data.get(k) for k in keys)

        @router.post("/v1/steerkit/load_set")
        async def load_set(raw: Request):
            try:
                args = await body(raw, "name", "path")
            except ValueError as e:
                return JSONResponse({"error": str(e)}, 400)
            return await run(self.control.load if self.control else None, *args)

        @router.post("/v1/steerkit/unload_set")
        async def unload_set(raw: Request):
            try:
                (name,) = await body(raw, "name")
            except ValueError as e:
                return JSONResponse({"error": str(e)}, 400)
            return await run(self.control.unload if self.control else None, name)

        @router.get("/v1/steerkit/sets")
        async def sets():
            return await run(self.control.state if self.control else None)

        app.include_router(router)
        app.add_middleware(_LoadByPath, control=lambda: self.control)

    async def init_state(self, engine_client, state, args) -> None:
        if engine_client is not None:
            try:
                self.control = SetControl(engine_client.vllm_config, hooks.engine_caller(engine_client))
            except ValueError as e:  # an engine these routes cannot serve: they say why, the server starts
                self.why = str(e)


# -- offline: an LLM in this process -----------------------------------------------------------------------
def _control(llm) -> SetControl:
    cached = getattr(llm, "_steerkit_control", None)
    if cached is None:
        engine = hooks.llm_engine(llm)
        cached = SetControl(engine.vllm_config, hooks.engine_caller(engine))
        llm._steerkit_control = cached
    return cached


def load_set(llm, name: str, path: str) -> dict:
    """Loads a steering set into a running ``vllm.LLM`` under ``name``; returns what the engine did."""
    return asyncio.run(_control(llm).load(name, path))


def unload_set(llm, name: str) -> dict:
    return asyncio.run(_control(llm).unload(name))


def steering_sets(llm) -> dict:
    return asyncio.run(_control(llm).state())
