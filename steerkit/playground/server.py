"""The playground's web app: Starlette routes over a ``Playground``, served by uvicorn.

  GET  /               the page
  GET  /api/info       attributes, suggested strengths and slider ranges, lanes, the development-split sweep
  POST /api/generate   server-sent events of one generation (``Playground.stream``)
  POST /api/sweep      the strength sweep, as JSON
  POST /api/vectors    load another vector file by path

A bad request gets a 400 with ``{"error": one line}``, and the server keeps serving.
"""
from __future__ import annotations

import json


def needs_ui():
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ValueError("playground: needs the ui extra (pip install 'steerkit[ui]')") from None


def app(playground):
    """The Starlette application serving ``playground``."""
    needs_ui()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.routing import Route

    from .page import PAGE

    def refused(err: Exception) -> JSONResponse:
        return JSONResponse({"error": str(err).splitlines()[0] if str(err) else type(err).__name__}, status_code=400)

    async def body(request):
        try:
            return json.loads(await request.body())
        except ValueError:
            raise ValueError("request: expected a JSON object") from None

    async def page(request):
        return HTMLResponse(PAGE)

    async def info(request):
        return JSONResponse(playground.info())

    async def generate(request):
        try:
            prompt, values, n = playground.check_request(await body(request))
        except ValueError as err:
            return refused(err)
        events = (f"data: {json.dumps(e)}\n\n" for e in playground.stream(prompt, values, n))
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def sweep(request):
        try:
            prompt, values, n = playground.check_request(await body(request))
        except ValueError as err:
            return refused(err)
        return JSONResponse(await run_in_threadpool(playground.sweep, prompt, values, n))

    async def vectors(request):
        try:
            payload = await body(request)
            path = payload.get("path") if isinstance(payload, dict) else None
            await run_in_threadpool(playground.set_vectors, path)
        except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, OSError) as err:
            return refused(err)
        return JSONResponse(playground.info())

    return Starlette(routes=[Route("/", page), Route("/api/info", info), Route("/api/generate", generate, methods=["POST"]),
                             Route("/api/sweep", sweep, methods=["POST"]), Route("/api/vectors", vectors, methods=["POST"])])


def serve(playground, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve until interrupted (Ctrl-C)."""
    needs_ui()
    import uvicorn

    uvicorn.run(app(playground), host=host, port=port, log_level="warning")
