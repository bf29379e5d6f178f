"""The web app behind ``dlnet serve``: a page at ``/``, ``POST /v1/colorize``, ``GET /healthz``.

Every photo goes through the project's one path: decoded and encoded by :mod:`dlnet.io.imageio`,
colorized by :class:`dlnet.infer.colorizer.Colorizer`. Each request's form (working size, rebalancing,
format) becomes an :class:`~dlnet.infer.options.InferenceOptions` over the server's defaults
(:attr:`ServeSettings.options`), passed to ``Colorizer.colorize`` with the photo, so one shared
Colorizer serves all threads; alpha, ICC profile and EXIF are kept as ``dlnet colorize`` keeps them.

Limits, checked as early as they can be:

* request body over ``max_upload_bytes``: 413, from ``Content-Length`` before any byte is read,
  else while the body streams in;
* an upload that has not fully arrived ``upload_timeout_s`` after its headers: 408, so a client
  that stalls cannot hold a connection (and its memory) for ever;
* photos beyond the ``workers`` being colorized wait in a queue, in arrival order, and are
  answered as workers free up; each waits at most ``queue_timeout_s`` (then 503 with
  ``Retry-After``), and only past ``queue_size`` waiting photos is a request shed at once (503 with
  ``Retry-After``). A request joins the queue once its upload has arrived, so clients that are
  slow to send (or stall) never lock the others out;
* image over ``max_pixels``: 413, from the image header before the pixels are decoded;
* not an image: 415; a corrupt or truncated one: 400 (decided by decoding, never by name or header).

Colour hints: the form field ``hints`` (the JSON of a hints file, pixels of the photo as displayed)
and ``hint_method``; a bad hint is a 422 naming it. The page re-colorizes as the user places
points, so recent uploads stay decoded in memory (``photo_cache_bytes``) and a request may name one
by its id (``photo``, from the ``X-Photo-Id`` header of its first answer) instead of sending it
again (:mod:`dlnet.apps.serve_photos`). ``Server-Timing`` says how long the photo's work took.

An upload that is not a photo is tried as a short video (:func:`dlnet.infer.video.colorize_video_bytes`):
longer than ``max_video_seconds``: 413; neither photo nor video: 415. The answer is then MP4 (or
Matroska when MP4 cannot hold the audio).

Uploads stay in memory, nothing a user sends names a file, errors are ``{"detail": "<sentence>"}``.

Example:
    >>> import uvicorn
    >>> app = create_app(settings=ServeSettings(weights="my-model.safetensors"))   # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)     # doctest: +SKIP
"""

import asyncio
import logging
import time
from collections import deque
from contextlib import asynccontextmanager
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from dlnet import __version__
from dlnet.apps.serve_photos import MEDIA_TYPES, PHOTO_ID_PATTERN, PhotoCache, colorize_upload, hints_info, request_options
from dlnet.apps.serve_photos import Rejected as _Rejected
from dlnet.apps.forms import form_options
from dlnet.apps.serve_runtime import ServeRuntime
from dlnet.apps.serve_settings import ServeSettings
from dlnet.io.hints import MAX_HINTS
from dlnet.infer.options import MAX_SATURATION, InferenceOptions
from dlnet.model.weights import DEFAULT_MODEL

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("dlnet.apps.serve")

STATIC_DIR = Path(str(files("dlnet.apps") / "static"))
COLORIZE_PATH = "/v1/colorize"
# The page loads nothing from elsewhere; say so to the browser too.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                               "object-src 'none'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _ErrorBody(BaseModel):
    detail: str


def _mb(n: int) -> str:
    if n < 1e6:
        return f"{n / 1e3:.0f} kB"
    return f"{n / 1e6:.0f} MB" if n >= 1e7 else f"{n / 1e6:.1f} MB"


def _too_large(settings: ServeSettings) -> str:
    return f"The upload is too large: the limit is {_mb(settings.max_upload_bytes)}."


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class _Gate:
    """ASGI middleware in front of ``POST /v1/colorize``: the upload's limits in size and time.

    An upload announced by ``Content-Length`` as too large is refused before any byte is read;
    one still arriving ``upload_timeout_s`` after its headers is answered 408 (the receive that
    waits past the deadline raises). Slots for the work are taken later (:class:`_Slots`).
    """

    def __init__(self, app, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != COLORIZE_PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_upload_bytes:
            return await _error(413, _too_large(self.settings))(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.upload_timeout_s
        arrived = False

        async def receive_in_time():
            nonlocal arrived
            if arrived:  # the body is in: later receives (a disconnect) may wait as they like
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise _Rejected(408, f"The upload was too slow: it must arrive within "
                                     f"{self.settings.upload_timeout_s:g} s of the request.") from None
            arrived = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)


class _Slots:
    """``workers`` photos colorized at once; up to ``queue_size`` more wait for a worker, in
    arrival order, each at most ``queue_timeout_s``; beyond either: 503 + ``Retry-After``.

    A finished photo hands its worker straight to the first waiting one (no race in which a
    newcomer overtakes the queue). Only touched on the event loop, so it needs no lock.
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.free = settings.workers
        self.queue_size, self.timeout_s = settings.queue_size, settings.queue_timeout_s
        self.retry_after_s = settings.retry_after_s
        self.waiting: deque[asyncio.Future] = deque()

    def _busy(self, why: str) -> _Rejected:
        return _Rejected(503, f"The server is busy ({why}); try again in {self.retry_after_s} s.",
                         headers={"Retry-After": str(self.retry_after_s)})

    async def _acquire(self) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        if len(self.waiting) >= self.queue_size:
            raise self._busy(f"{len(self.waiting)} photos are waiting already")
        turn = asyncio.get_running_loop().create_future()
        self.waiting.append(turn)
        try:
            await asyncio.wait_for(turn, self.timeout_s)  # returns if the turn came as it timed out
        except BaseException as e:  # timed out, or cancelled (the client left)
            if turn in self.waiting:
                self.waiting.remove(turn)
            elif turn.done() and not turn.cancelled():  # handed a worker as it left: pass it on
                self._release()
            if isinstance(e, asyncio.TimeoutError):
                raise self._busy(f"no worker was free for {self.timeout_s:g} s") from None
            raise

    def _release(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():  # (one whose wait was cancelled is done)
                turn.set_result(None)  # the worker passes to it
                return
        self.free += 1

    @asynccontextmanager
    async def hold(self):
        await self._acquire()
        try:
            yield
        finally:
            self._release()


def _readable(errors) -> str:
    """FastAPI's validation errors as one sentence: ``size: Input should be ... ; file: ...``."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "form"))
        msg = err.get("msg", "invalid")
        parts.append(f"{where}: {msg}" if where else msg)
    return "Invalid request: " + "; ".join(parts) + "."


def _model_name(settings: ServeSettings, given: bool) -> str:
    if settings.weights is not None:
        return Path(settings.weights).stem if Path(settings.weights).suffix else settings.weights
    return "custom" if given else DEFAULT_MODEL


def create_app(colorizer=None, settings: ServeSettings | None = None) -> FastAPI:
    """Build the FastAPI app around ``colorizer`` (a :class:`~dlnet.infer.colorizer.Colorizer`),
    or the model ``settings`` name (loaded now: raises ``WeightsError``; see :class:`ServeRuntime`)."""
    settings = settings or ServeSettings()
    model_name = _model_name(settings, colorizer is not None)
    runtime = ServeRuntime(settings, colorizer)
    # Starlette spools file parts over 1 MB to a temporary file; raise that threshold above our
    # own limit so uploads stay in memory (the body limit, not the spool, bounds the memory).
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, settings.max_upload_bytes + 1)
    # Inference threads: the event loop only moves bytes; decoding, the model and encoding run here.
    pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="dlnet-colorize")
    slots = _Slots(settings)
    recent = PhotoCache(settings.photo_cache_bytes)

    app = FastAPIOffline(  # FastAPI whose /docs and /redoc load their assets from this server
        title="dlnet",
        summary="Colorize black-and-white photos with DL-Net, on this computer.",
        version=__version__,
        static_url="/static-docs",
    )
    app.add_middleware(_Gate, settings=settings)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 413 and not isinstance(exc, _Rejected):  # the streamed body limit
            detail = _too_large(settings)
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _readable(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return _error(500, "Something went wrong on the server while handling this request; "
                           "the details are in the server's log.")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    @app.get("/healthz", summary="Liveness, the model and the limits")
    async def healthz() -> dict:
        return {
            "status": "ok",
            "model": model_name,
            **runtime.describe(),
            "load": {"colorizing": settings.workers - slots.free, "waiting": len(slots.waiting)},
            "defaults": {"size": settings.default_size, "rebalance": settings.rebalance,
                         "saturation": runtime.photos.model_saturation},
            "hints": hints_info(runtime.photos, recent),
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                       "max_size": settings.max_size, "max_saturation": MAX_SATURATION, "workers": settings.workers,
                       "queue_size": settings.queue_size, "queue_timeout_s": settings.queue_timeout_s,
                       "upload_timeout_s": settings.upload_timeout_s,
                       "max_video_seconds": settings.max_video_seconds},
        }

    error_responses = {code: {"model": _ErrorBody, "description": text} for code, text in {
        400: "corrupt or truncated image",
        404: "the photo named by id is no longer held: send the file again",
        408: "the upload did not arrive in time",
        413: "upload or image too large",
        415: "not an image or video",
        422: "invalid option or hint",
        503: "busy: retry after the Retry-After header's seconds",
    }.items()}

    @app.post(
        COLORIZE_PATH,
        summary="Colorize one photo or short video",
        response_class=Response,
        max_body_size=settings.max_upload_bytes,
        responses={200: {"content": {t: {} for t in (*MEDIA_TYPES.values(), "video/mp4")},
                         "description": "the colorized photo or video, same width and height as the upload"},
                   **error_responses},
    )
    @form_options(InferenceOptions, skip=("hints",),  # size, format, saturation...: as InferenceOptions declares them
                  defaults={"size": settings.default_size, "rebalance": settings.rebalance, "format": "png"},
                  bounds={"size": {"le": settings.max_size}, "format": {"choices": tuple(MEDIA_TYPES)}})
    async def colorize(
        file: Annotated[UploadFile | None, File(description="the photo (any format Pillow reads) or a short video")] = None,
        photo: Annotated[str | None, Form(pattern=PHOTO_ID_PATTERN,
                                          description="instead of file: the id of a photo sent before (the "
                                                      "X-Photo-Id header of its answer); 404 once no longer held")] = None,
        hints: Annotated[str | None, Form(description='colour points, JSON: [{"x": 120.5, "y": 45, "color": "#a03020"}] '
                                                      "(pixels of the photo as displayed, origin top left; optional "
                                                      f'"radius" in px; at most {MAX_HINTS}); only their a*b* count')] = None,
        *, options: dict,
    ) -> Response:
        if file is None and photo is None:
            raise _Rejected(422, "Invalid request: no image: send the photo as the multipart form field 'file' "
                                 "(or 'photo', the id of one sent before).")
        options = request_options(runtime.photos, settings.options, hints, **options)  # the form's over the server's
        data = None if file is None else await file.read()
        async with slots.hold():
            started = time.perf_counter()
            out, media_type, photo_id = await asyncio.get_running_loop().run_in_executor(
                pool, colorize_upload, runtime, recent, data, photo, options, settings.max_video_seconds)
            took_ms = 1000 * (time.perf_counter() - started)
        ext = {"video/mp4": "mp4", "video/x-matroska": "mkv"}.get(media_type, options.format)
        headers = {"Content-Disposition": f'inline; filename="colorized.{ext}"', "Cache-Control": "no-store",
                   "Server-Timing": f"colorize;dur={took_ms:.1f}"}
        if photo_id:
            headers["X-Photo-Id"] = photo_id
        return Response(out, media_type=media_type, headers=headers)

    return app
