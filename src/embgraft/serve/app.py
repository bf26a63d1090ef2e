"""The HTTP API of ``embgraft serve``: a Starlette app answering

- ``POST /predict`` ``{"texts": [...], "top_k": k}`` -> ``{"predictions": [[{"label", "probability"}, ...], ...]}``
  (a multi-label model answers every label at or above its threshold, most probable first)
- ``GET /health`` -> ``{"status": "ok", "model": ..., "backend": "onnx" | "torch"}``
- ``GET /labels`` -> ``{"labels": [...]}``

Concurrent requests are batched: a request's texts join a queue, and one worker scores what has
gathered once ``batch_size`` texts are waiting or the oldest has waited ``max_wait_ms``, in a
worker thread so the event loop keeps accepting. Bad input is a 4xx JSON ``{"error": ...}``
(bad JSON 400, too large 413, wrong types 422), never a traceback; an unexpected failure is a
500 with the same shape. One log line per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embgraft.errors import ConfigError

log = logging.getLogger("embgraft.serve")


@dataclass(frozen=True)
class ServeConfig:
    """Limits and batching. ``max_texts``: texts per request; ``max_text_chars``: characters per
    text; ``max_body_bytes``: request body; ``max_top_k``: labels per text; ``batch_size``: texts
    scored together; ``max_wait_ms``: how long the first queued text waits for company."""

    max_texts: int = 256
    max_text_chars: int = 10_000
    max_body_bytes: int = 1 << 20
    max_top_k: int = 100
    batch_size: int = 64
    max_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        bad = [f"{k} must be positive, not {v!r}" for k, v in vars(self).items() if not v > 0]
        if bad:
            raise ConfigError("invalid serve settings: " + "; ".join(bad))


def import_starlette():
    try:
        import starlette  # noqa: F401
    except ImportError:
        raise ImportError("embgraft serve needs starlette and uvicorn: pip install 'embgraft[serve]'") from None


def load_model(path: str | os.PathLike) -> tuple[Any, str]:
    """``(model, backend)``: an export directory (``export.json``) through the torch-free
    ``Predictor``, a run directory through ``Classifier`` (torch). Both answer ``predict_proba``
    and carry ``labels``."""
    from embgraft.export.layout import EXPORT_FILE

    path = Path(path)
    if (path / EXPORT_FILE).is_file():
        from embgraft.export.predictor import Predictor

        return Predictor.load(path), "onnx"
    from embgraft.training.classifier import Classifier

    return Classifier.load(path), "torch"


class HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Batcher:
    """Texts from concurrent requests, scored together in batches of up to ``batch_size`` texts
    (a request larger than that is one batch of its own). ``n_batches`` counts model calls."""

    def __init__(self, model, config: ServeConfig) -> None:
        self.model = model
        self.config = config
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.n_batches = 0

    async def start(self) -> None:
        self.queue = asyncio.Queue()
        self.worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    async def score(self, texts: list[str]):
        """(len(texts), n_classes) probabilities."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            n = len(items[0][0])
            deadline = loop.time() + self.config.max_wait_ms / 1000
            while n < self.config.batch_size:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                items.append(item)
                n += len(item[0])
            texts = [t for item, _ in items for t in item]
            self.n_batches += 1
            try:
                proba = await loop.run_in_executor(None, self.model.predict_proba, texts)
            except Exception as e:  # every waiting request hears of it
                for _, future in items:
                    if not future.done():
                        future.set_exception(e)
                continue
            at = 0
            for item, future in items:
                if not future.done():
                    future.set_result(proba[at:at + len(item)])
                at += len(item)


def create_app(path: str | os.PathLike, config: ServeConfig = ServeConfig(), *, model=None, backend: str = "onnx"):
    """The Starlette app serving the run or export at ``path`` (or an already loaded ``model``)."""
    import_starlette()
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    if model is None:
        model, backend = load_model(path)
    names = list(model.labels.names)
    batcher = Batcher(model, config)

    async def predict(request):
        body = await _read_body(request, config.max_body_bytes)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"the body is not JSON: {e}") from None
        texts, top_k = _validate(payload, config)
        proba = await batcher.score(texts)
        request.state.n_texts = len(texts)
        labelled = model.pairs(proba, top_k=top_k)  # multi-label: every label at its threshold
        return JSONResponse({"predictions": [[{"label": lab, "probability": p} for lab, p in row] for row in labelled]})

    async def health(request):
        return JSONResponse({"status": "ok", "model": str(path), "backend": backend, "n_classes": len(names)})

    async def labels(request):
        return JSONResponse({"labels": names})

    async def http_error(request, exc: HTTPError):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def not_found(request, exc):
        status = getattr(exc, "status_code", 404)
        return JSONResponse({"error": getattr(exc, "detail", "not found")}, status_code=status)

    async def internal(request, exc):
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse({"error": "internal error"}, status_code=500)

    from contextlib import asynccontextmanager

    from starlette.exceptions import HTTPException

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
                            Route("/labels", labels, methods=["GET"])],
                    exception_handlers={HTTPError: http_error, HTTPException: not_found, Exception: internal},
                    lifespan=lifespan)
    app.state.batcher = batcher
    app.add_middleware(_LogRequests)
    return app


class _LogRequests:
    """One line per request: method, path, status, texts, milliseconds (an ASGI middleware)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            n = scope.get("state", {}).get("n_texts", "-")
            log.info("%s %s %d texts=%s %.1fms", scope["method"], scope["path"], status["code"], n,
                     (time.perf_counter() - start) * 1000)


async def _read_body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the body is {int(declared):,} bytes; the limit is {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _validate(payload: Any, config: ServeConfig) -> tuple[list[str], int]:
    if not isinstance(payload, dict):
        raise HTTPError(422, 'the body must be a JSON object: {"texts": [...], "top_k": k}')
    unknown = sorted(set(payload) - {"texts", "top_k"})
    if unknown:
        raise HTTPError(422, f"unknown field(s): {', '.join(unknown)}")
    texts = payload.get("texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise HTTPError(422, '"texts" must be a list of strings')
    if not texts:
        raise HTTPError(422, '"texts" is empty')
    if len(texts) > config.max_texts:
        raise HTTPError(413, f"{len(texts):,} texts; the limit is {config.max_texts:,} per request")
    long = next((i for i, t in enumerate(texts) if len(t) > config.max_text_chars), None)
    if long is not None:
        raise HTTPError(413, f"text {long} has {len(texts[long]):,} characters; the limit is {config.max_text_chars:,}")
    top_k = payload.get("top_k", 1)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= config.max_top_k:
        raise HTTPError(422, f'"top_k" must be an integer from 1 to {config.max_top_k}')
    return texts, top_k
