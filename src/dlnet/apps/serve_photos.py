"""One request's photo work for ``dlnet serve``: decode the upload (or find it among the recent
ones), colorize it with the request's options and hints, encode the answer.

Colour hints make the page a loop: every point the user drops, drags or removes asks for a new
colour photo. So the server keeps the most recent uploads decoded (:class:`PhotoCache`, keyed
by the SHA-256 of the uploaded bytes, the photo's *id*, sent back in the ``X-Photo-Id`` header),
and a request may name a photo by that id (the form field ``photo``) instead of sending it
again: no upload, no decoding. An id the cache no longer holds (evicted, or the server
restarted) is a 404 saying to send the file again, which the page then does.

Hints arrive as the form field ``hints``, the JSON of a hints file (:mod:`dlnet.io.hints`):
:func:`form_hints` reads it; the rest of the checking is :class:`~dlnet.infer.options.InferenceOptions`'
(each bad hint one line naming it) and the pipeline's (a hint outside the photo).

Example:
    >>> import numpy as np
    >>> from dlnet.io.imageio import Photo
    >>> cache = PhotoCache(max_bytes=10_000_000)
    >>> photo = Photo(np.zeros((40, 48, 3), np.uint8))
    >>> cache.put(cache.key(b"the upload"), photo), cache.get(cache.key(b"the upload")) is photo
    (True, True)
    >>> form_hints('[{"x": 3, "y": 4, "color": "#a03020"}]')
    [{'x': 3, 'y': 4, 'color': '#a03020'}]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict

from fastapi import HTTPException

from dlnet.color.fullres import lightness
from dlnet.io.hints import MAX_HINTS
from dlnet.io.imageio import ImageError, Photo, encode_image, read_image
from dlnet.infer.options import DEFAULT_HINT_METHOD, HINT_METHODS, InferenceOptions, OptionError

__all__ = ["PhotoCache", "Rejected", "colorize_upload", "form_hints", "request_options", "hints_info", "MEDIA_TYPES",
           "STATUS_OF_KIND", "PHOTO_ID_PATTERN"]

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
# ImageError.kind -> HTTP status; else 400
STATUS_OF_KIND = {"not_image": 415, "too_large": 413, "unencodable": 422}
PHOTO_ID_PATTERN = "^[0-9a-f]{64}$"  # a SHA-256, as hex
MAX_HINTS_CHARS = MAX_HINTS * 200  # the hints field's longest JSON: a thousand generous hints
_MAX_DETAIL = 300  # characters of an error that may echo what the user sent


class Rejected(HTTPException):
    """A request refused with a sentence written for the person who sent it."""


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def option_rejected(e: OptionError) -> Rejected:
    """A 422 for an option the model or the photo cannot take: ``"Hint 2 at (500, 3) is outside
    the 48x40 photo."``, ``"Hints are not usable: hint 1: ..."``, ``"temperature is fixed ..."``."""
    if e.field == "hints":
        return Rejected(422, _sentence(str(e)))
    return Rejected(422, f"{e}.")


def form_hints(text: str | None) -> list:
    """The ``hints`` form field's JSON -> a list for ``InferenceOptions(hints=...)`` (which
    checks each hint); empty or None: no hints. :class:`Rejected` (422) for text that is not JSON."""
    if not text or not text.strip():
        return []
    if len(text) > MAX_HINTS_CHARS:
        raise Rejected(422, f"Hints: the field is {len(text):,} characters, more than {MAX_HINTS:,} hints need "
                            f"(at most {MAX_HINTS_CHARS:,}).")
    try:
        return json.loads(text)
    except ValueError as e:
        where = f"line {e.lineno}, column {e.colno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise Rejected(422, _sentence(f"hints are not JSON ({where}); send a list of "
                                      '{"x": ..., "y": ..., "color": "#rrggbb"}')) from None


def request_options(photos, base: InferenceOptions, hints: str | None, **changes) -> InferenceOptions:
    """``base`` with a request's ``changes`` and its ``hints`` field (JSON), checked now against
    the colorizer ``photos``, before the request waits for a worker (learned needs a model with
    hint inputs). Raises :class:`Rejected` (422)."""
    try:
        options = base.replace(hints=form_hints(hints), **changes)
        check = getattr(photos, "check_options", None)  # (stand-in colorizers in tests have none)
        if check is not None:
            check(options)
    except OptionError as e:
        raise option_rejected(e) from None
    return options


def hints_info(photos, cache: PhotoCache) -> dict:
    """What ``/healthz`` says about hints: whether the colorizer ``photos`` has hint inputs
    (the learned method), the methods it offers, its default, the limits."""
    learned = bool(getattr(photos, "takes_hints", False))
    return {"learned": learned, "methods": list(HINT_METHODS) if learned else ["propagate"],
            "default_method": DEFAULT_HINT_METHOD, "max_hints": MAX_HINTS,
            "photo_cache_bytes": cache.max_bytes}


def _nbytes(photo: Photo) -> int:
    return sum(a.nbytes for a in (photo.rgb, photo.alpha, photo.lightness) if a is not None)


class PhotoCache:
    """Decoded photos by id (:meth:`key`: the SHA-256 of the uploaded bytes), the least recently
    used dropped first once their pixels pass ``max_bytes`` (0: keeps none; a photo larger than
    the whole budget is not kept). Shared by the worker threads (a lock guards it); the photos
    are only read, so one may be colorized by several requests at once."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._photos: OrderedDict[str, Photo] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(data: bytes) -> str:
        """A photo's id: the SHA-256 of its upload, as 64 hex digits."""
        return hashlib.sha256(data).hexdigest()

    def get(self, key: str) -> Photo | None:
        """The photo of ``key``, now the most recently used, or None."""
        with self._lock:
            photo = self._photos.get(key)
            if photo is not None:
                self._photos.move_to_end(key)
            return photo

    def put(self, key: str, photo: Photo) -> bool:
        """Keep ``photo`` as ``key``, dropping the least recently used beyond the budget; False
        when it is not kept (larger than the budget)."""
        size = _nbytes(photo)
        if size > self.max_bytes:
            return False
        with self._lock:
            old = self._photos.pop(key, None)
            if old is not None:
                self._bytes -= _nbytes(old)
            self._photos[key] = photo
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._photos.popitem(last=False)
                self._bytes -= _nbytes(old)
        return True

    def __len__(self) -> int:
        return len(self._photos)

    def __contains__(self, key: str) -> bool:
        return key in self._photos


def colorize_upload(runtime, cache: PhotoCache, data: bytes | None, photo_id: str | None,
                    options: InferenceOptions, max_video_seconds: float = 0) -> tuple[bytes, str, str | None]:
    """The CPU-bound job of one request, run in a worker thread: the upload ``data`` decoded (or
    found in ``cache``), or, with ``data`` None, the cached photo ``photo_id``; colorized by
    ``runtime.photos`` (a :class:`~dlnet.apps.serve_runtime.ServeRuntime`), encoded.

    Returns the result, its media type and the photo's id (None for a video, or a photo the
    cache cannot keep). Raises :class:`Rejected` with the status and sentence to answer.
    """
    try:
        if data is None:
            photo = cache.get(photo_id)
            if photo is None:
                raise Rejected(404, f"Photo {photo_id[:12]}… is no longer held by the server (it keeps the "
                                    f"most recent uploads, {cache.max_bytes / 1e6:.0f} MB of pixels); send the file again.")
        else:
            photo_id = cache.key(data)
            photo = cache.get(photo_id)
        if photo is None:
            try:
                photo = read_image(data, max_pixels=options.max_pixels)
            except ImageError as e:
                if e.kind != "not_image" or max_video_seconds <= 0:
                    raise
                if options.hints:
                    raise Rejected(422, "Hints apply to photos only, and this upload is not a photo.") from None
                from dlnet.infer.video import colorize_video_bytes  # not a photo: perhaps a short video

                return (*colorize_video_bytes(runtime.photos, data, options, max_video_seconds), None)
            # kept with its L*: a hint update then costs the model and the colour, not the L* (25 ms at 1 MP)
            photo = dataclasses.replace(photo, lightness=lightness(photo.rgb))
            if not cache.put(photo_id, photo):
                photo_id = None
        result = runtime.photos.colorize(photo, options)
        return encode_image(result, options.format, quality=options.quality), MEDIA_TYPES[options.format], photo_id
    except ImageError as e:
        raise Rejected(STATUS_OF_KIND.get(e.kind, 400), f"{e.cause[:1].upper()}{e.cause[1:]}.") from e
    except OptionError as e:  # an option this runtime cannot honour (an ONNX model's fixed temperature), a hint off the photo
        raise option_rejected(e) from e
