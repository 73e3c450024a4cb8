"""``steerkit playground``: a local web app for exploring steering.

  session  the model side: one batched generation per request (unsteered and steered rows, per-row
           strengths), streamed step by step with each token's gates; the strength sweep; vector files
           swapped at runtime; every request checked into one-line errors
  page     the page itself: HTML, CSS and script in one string, nothing fetched from elsewhere
  server   the Starlette app (server-sent events) and ``serve`` (uvicorn, 127.0.0.1 by default)

Its dependencies (starlette, uvicorn) are the ``[ui]`` extra.
"""
from .session import Playground

__all__ = ["Playground"]
