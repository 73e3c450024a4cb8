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

from . import hooks
from .registry import COPY_SEPARATOR
from .requests import CONFIG_KEY, PluginConfig

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
        if not isinstance(name, str) or not name or COPY_SEPARATOR in name:
            raise ValueError(f'name: expected a non-empty string without "{COPY_SEPARATOR}", got {name!r}')
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


class SteeringSetsEndpoints:
    """``POST /v1/steerkit/load_set`` ``{"name": ..., "path": ...}``, ``POST /v1/steerkit/unload_set``
    ``{"name": ...}`` and ``GET /v1/steerkit/sets``. A refusal is a 400 (404 for a name not served) with one
    line naming what is wrong; the server keeps serving."""

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
