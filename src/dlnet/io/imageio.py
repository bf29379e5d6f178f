"""Robust image reading and writing for colorization (Pillow underneath).

Reading turns any file Pillow decodes (and any PIL image or numpy array) into an RGB array,
with EXIF orientation applied, whatever its mode: ``1``, ``L``, ``LA``, ``P`` (with or without
transparency), ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``, ``I;16``, ``I``, ``F``; animated images
give their first frame. Alpha is kept aside so that the output can carry it back.

Anything that cannot be read raises :class:`ImageError`, whose message is one line naming the
file and the cause (empty file, truncated, not an image, too many pixels, ...).

A :class:`Photo` is the one photo object of the inference path: read here, colorized by
:meth:`dlnet.infer.colorizer.Colorizer.colorize_photos` into another Photo (with the source's alpha,
format, ICC profile and EXIF), written here. Writing keeps the input's format (PNG, JPEG, WebP,
TIFF) with its RGB ICC profile, EXIF and alpha, and is atomic (:mod:`dlnet.io.atomic`).

Training, evaluation and ``dlnet pack`` read photos here too, through :func:`read_rgb8` (the
same decoding, as 8-bit RGB) and :func:`resize_crop`: there is one photo reader.

Example:
    >>> photo = read_image("old.jpg")              # doctest: +SKIP
    >>> photo = read_image(np.zeros((30, 40, 4), np.uint8))      # arrays and PIL images too
    >>> photo.size, photo.rgb.dtype, photo.alpha.shape           # the alpha channel kept aside
    ((40, 30), dtype('uint8'), (30, 40))
    >>> save_image(photo, "out/old.png")           # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dlnet.errors import DLNetError
from dlnet.io.atomic import atomic_open

__all__ = ["ImageError", "Photo", "read_image", "read_rgb8", "resize_crop", "to_photo", "save_image", "encode_image",
           "output_format", "suffix_format", "DEFAULT_MAX_PIXELS", "SAVE_FORMATS", "IMAGE_SUFFIXES"]

# 120 MP covers the largest camera sensors (about 100 MP) with room; far beyond that a file is
# more likely a decompression bomb, and colorizing it would need several GB of memory.
DEFAULT_MAX_PIXELS = 120_000_000

# Formats written as they came in; anything else (GIF, BMP, ...) is written as PNG.
SAVE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif"}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_MAX_SIDE = {"JPEG": 65500, "WEBP": 16383}  # the formats' own limits on a side, px

# Suffixes picked up when a folder is scanned (explicitly named files are always tried).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif",
                  ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".jp2", ".j2k", ".jfif", ".avif"}


class ImageError(DLNetError):
    """An image that cannot be read or written; ``str()`` is one line: ``"<path>: <cause>"``.

    ``kind`` says which sort of problem it is, for callers that answer differently (the web
    server's HTTP status): ``"not_image"``, ``"corrupt"`` (empty, truncated, undecodable),
    ``"too_large"`` (over the pixel limit), ``"io"`` (missing, unreadable, unwritable),
    ``"unencodable"`` (the output format cannot hold this image) or ``"invalid"`` (anything else).
    """

    def __init__(self, path: str | os.PathLike | None, cause: str, kind: str = "invalid") -> None:
        self.path = None if path is None else str(path)
        self.cause = " ".join(str(cause).split())  # one line, whatever the library said
        self.kind = kind
        super().__init__(f"{self.path or '<image>'}: {self.cause}")


@dataclass
class Photo:
    """A decoded photo ready for colorization.

    Attributes:
        rgb: ``(H, W, 3)`` array, ``uint8`` (0..255) for 8-bit sources, ``float32`` (0..1) for
            16-bit and float sources; uint8 is kept as is because a 12-MP photo is 36 MB so, but
            144 MB as float32.
        alpha: ``(H, W)`` array of the same dtype convention, or None.
        format: Pillow format name of the source (``"JPEG"``, ``"PNG"``, ...), None for arrays.
        icc_profile: the source's ICC profile if it describes RGB (a grey or CMYK profile would be
            wrong on an RGB output), else None.
        exif: the source's EXIF bytes with the orientation reset (already applied), or None.
        lightness: the photo's L* ``(H, W)`` float32 0..100 where it was computed already and is
            kept for the next colorization of the same photo (a server's cache of uploads), or
            None: the colorizer computes it.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    format: str | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    lightness: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` as in PIL."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def to_image(self) -> Image.Image:
        """The photo as an 8-bit PIL image, ``RGB`` or ``RGBA`` with its alpha; its ICC profile and
        EXIF ride in ``info``, where :func:`save_image` and :func:`encode_image` find them."""
        img = Image.fromarray(_to_uint8(self.rgb))
        if self.alpha is not None:
            img.putalpha(Image.fromarray(_to_uint8(self.alpha)))
        if self.icc_profile:
            img.info["icc_profile"] = self.icc_profile
        if self.exif:
            img.info["exif"] = self.exif
        return img


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == np.uint8 else np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)


def _float_to_unit(a: np.ndarray) -> np.ndarray:
    """Float pixels of unknown scale -> 0..1: kept if already 0..1, else read as 0..255, else
    divided by the maximum. NaN and infinities become 0."""
    a = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max()) if a.size else 0.0
    if top > 1.0:
        a = a / (255.0 if top <= 255.0 else top)
    return np.clip(a, 0.0, 1.0)


def _high_bit_grey(img: Image.Image) -> np.ndarray:
    """``I;16*``, ``I`` and ``F`` modes -> ``(H, W)`` float32 0..1 (16-bit precision kept)."""
    a = np.asarray(img)
    if img.mode == "F":
        return _float_to_unit(a)
    # I;16 is 0..65535; mode I usually holds 16-bit data too (PNG, TIFF), so the same scale.
    return np.clip(a.astype(np.float32) / 65535.0, 0.0, 1.0)


def _array_to_rgb(a: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(H, W)``, ``(H, W, 1|2|3|4)`` array of uint8, uint16, bool, int or float -> rgb, alpha."""
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or 0 in a.shape[:2]:
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        a = _float_to_unit(a)
    elif np.issubdtype(a.dtype, np.integer):
        a = _float_to_unit(a.astype(np.float32))
    else:
        raise ValueError(f"unsupported image array dtype {a.dtype}")
    colour = a[..., :1] if a.shape[2] in (1, 2) else a[..., :3]
    alpha = a[..., -1] if a.shape[2] in (2, 4) else None
    if alpha is not None and bool((alpha >= (255 if alpha.dtype == np.uint8 else 1.0)).all()):
        alpha = None  # opaque: nothing to keep
    rgb = np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour
    return np.ascontiguousarray(rgb), alpha


def _image_to_rgb(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any PIL mode -> ``(H, W, 3)`` rgb and optional ``(H, W)`` alpha (see :class:`Photo`)."""
    mode = img.mode
    if mode in ("F", "I") or mode.startswith("I;16"):
        return _array_to_rgb(_high_bit_grey(img))
    if mode == "P":  # palettes may carry transparency
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):  # 1, CMYK, YCbCr, LAB, HSV, ...
        img = img.convert("RGB")
    return _array_to_rgb(np.asarray(img))


def _rgb_icc(img: Image.Image) -> bytes | None:
    """The ICC profile if its colour space is RGB (bytes 16..19 of the header), else None."""
    icc = img.info.get("icc_profile")
    return icc if isinstance(icc, bytes) and icc[16:20] == b"RGB " else None


def to_photo(img: Image.Image, path: str | os.PathLike | None = None,
             max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode an opened PIL image into a :class:`Photo` (EXIF orientation applied)."""
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(path, f"{w}x{h} is {w * h / 1e6:.1f} MP, over the limit of "
                               f"{max_pixels / 1e6:.1f} MP (decompression bomb?)", kind="too_large")
    fmt = img.format
    icc = _rgb_icc(img)
    if getattr(img, "is_animated", False):
        img.seek(0)  # the first frame of an animation
    try:
        img = ImageOps.exif_transpose(img)
        exif = img.getexif()
    except Exception:  # a corrupt EXIF block should not cost the photo: keep it unrotated
        exif = None
    exif_bytes = exif.tobytes() if exif else None
    rgb, alpha = _image_to_rgb(img)
    return Photo(rgb, alpha, fmt, icc, exif_bytes)


def read_image(source: str | os.PathLike | bytes | Image.Image | np.ndarray | Photo,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a file path, the bytes of an image file (an upload, kept in memory), a PIL image or
    a numpy array into a :class:`Photo` (a Photo is returned as it is).

    Arrays may be ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` (last channel alpha), of uint8,
    uint16 (0..65535) or float (0..1; 0..255 is recognised) values.

    Raises:
        ImageError: one line naming the file and what is wrong with it.
    """
    if isinstance(source, Photo):
        return source
    if isinstance(source, np.ndarray):
        try:
            rgb, alpha = _array_to_rgb(source)
        except ValueError as e:
            raise ImageError(None, str(e)) from None
        return Photo(rgb, alpha)
    if isinstance(source, Image.Image):
        try:
            return to_photo(source, getattr(source, "filename", None) or None, max_pixels)
        except ImageError:
            raise
        except Exception as e:
            raise ImageError(None, f"cannot decode image ({type(e).__name__}: {e})", kind="corrupt") from None
    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    path = None if in_memory else Path(source)
    try:
        if in_memory:
            if len(source) == 0:
                raise ImageError(None, "empty file (0 bytes)", kind="corrupt")
            fp = io.BytesIO(source)
        else:
            if path.is_dir():
                raise ImageError(path, "is a folder, not an image", kind="not_image")
            if path.stat().st_size == 0:
                raise ImageError(path, "empty file (0 bytes)", kind="corrupt")
            fp = path
        with warnings.catch_warnings():
            # A decoder's warnings (possibly corrupt EXIF, ...) are not the user's to read, and
            # would be two lines on stderr; Pillow's bomb warning defers to max_pixels anyway.
            warnings.simplefilter("ignore")
            with Image.open(fp) as img:
                return to_photo(img, path, max_pixels)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(path, "no such file", kind="io") from None
    except PermissionError:
        raise ImageError(path, "permission denied", kind="io") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file Pillow can read", kind="not_image") from None
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6
        raise ImageError(path, f"too many pixels, over Pillow's limit of {limit:.0f} MP (decompression bomb?)",
                         kind="too_large") from None
    except Exception as e:  # OSError, SyntaxError, ValueError, EOFError, and any other a decoder raises
        cause = str(e) or type(e).__name__
        if "truncated" in cause or isinstance(e, EOFError):
            cause = f"truncated or corrupt image data ({cause})"
        elif not isinstance(e, (OSError, SyntaxError, ValueError, MemoryError)):
            cause = f"{type(e).__name__}: {cause}"  # e.g. the AVIF decoder's RuntimeError
        raise ImageError(path, f"cannot decode image: {cause}", kind="corrupt") from None


def read_rgb8(source: str | os.PathLike | bytes | Image.Image | np.ndarray | Photo,
              max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The photo as 8-bit sRGB ``(H, W, 3)`` uint8, read by :func:`read_image` (EXIF orientation,
    every mode, alpha set aside; 16-bit and float sources rounded to 8 bits): the one reader of
    training, evaluation and packing, so they see a photo as ``dlnet colorize`` does.

    Raises:
        ImageError: one line naming the file and what is wrong with it.
    """
    return _to_uint8(read_image(source, max_pixels).rgb)


def resize_crop(rgb: np.ndarray, size: int, rng=None) -> np.ndarray:
    """uint8 RGB ``(H, W, 3)`` -> ``(size, size, 3)``: shorter side to ``size`` (bicubic), then a
    square crop, random with ``rng`` (a :class:`random.Random`-like object), else centred.

    Example:
        >>> resize_crop(np.zeros((60, 90, 3), np.uint8), 30).shape
        (30, 30, 3)
    """
    im = Image.fromarray(rgb)
    w, h = im.size
    scale = size / min(w, h)
    if scale != 1:
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = im.size
    x = rng.randint(0, w - size) if rng else (w - size) // 2
    y = rng.randint(0, h - size) if rng else (h - size) // 2
    return np.asarray(im.crop((x, y, x + size, y + size)))


def suffix_format(suffix: str) -> str | None:
    """The Pillow format a file suffix names (``".jpg"`` -> ``"JPEG"``), None if none does.

    JPEG, PNG, GIF, BMP and PPM are looked up without importing all of Pillow's plugins (about 40
    modules, 60 ms of a short run's start-up); other suffixes load them once.

    >>> suffix_format(".JPG"), suffix_format(".webp"), suffix_format(".txt")
    ('JPEG', 'WEBP', None)
    """
    suffix = suffix.lower()
    Image.preinit()
    return Image.EXTENSION.get(suffix) or Image.registered_extensions().get(suffix)


def output_format(path: str | os.PathLike, source_format: str | None, requested: str | None = None) -> tuple[Path, str]:
    """Where and how to save an output: ``requested`` (png/jpeg/webp/tiff) wins, else the
    source's format if writable (PNG/JPEG/WebP/TIFF), else PNG. The suffix is changed only when
    it does not already name the chosen format. Returns ``(path, PIL format name)``."""
    path = Path(path)
    if requested:
        fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(requested.upper(), requested.upper())
        if fmt not in SAVE_FORMATS:
            raise ValueError(f"unsupported output format {requested!r}; choose from png, jpeg, webp, tiff")
    else:
        fmt = source_format if source_format in SAVE_FORMATS else "PNG"
    if suffix_format(path.suffix) != fmt:
        path = path.with_suffix(SAVE_FORMATS[fmt])
    return path, fmt


def _write(img: Image.Image | Photo, f, fmt: str, icc_profile: bytes | None, exif: bytes | None,
           quality: int) -> None:
    """Encode ``img`` as ``fmt`` into the binary file object ``f`` (the one encoder of both
    :func:`save_image` and :func:`encode_image`). ICC profile and EXIF not given are the image's
    own (a :class:`Photo`'s, or an RGB profile and EXIF in a PIL image's ``info``)."""
    if isinstance(img, Photo):
        img = img.to_image()
    fmt = fmt.upper()
    icc_profile = _rgb_icc(img) if icc_profile is None else icc_profile
    exif = img.info.get("exif") if exif is None else exif
    if img.mode == "RGBA" and fmt not in _ALPHA_FORMATS:
        img = img.convert("RGB")
    params: dict = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if exif:
        params["exif"] = exif
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    limit = _MAX_SIDE.get(fmt)
    if limit and max(img.size) > limit:  # checked here: libjpeg would also print to stderr
        raise ImageError(None, f"cannot write as {fmt}: {img.width}x{img.height} px is over its limit of "
                               f"{limit} px a side; choose PNG or TIFF", kind="unencodable")
    try:
        img.save(f, format=fmt, **params)
    except OSError:
        raise
    except Exception as e:  # the encoder refusing this image (EXIF too long for JPEG, ...)
        raise ImageError(None, f"cannot write as {fmt}: {e}", kind="unencodable") from None


def encode_image(img: Image.Image | Photo, format: str = "PNG", icc_profile: bytes | None = None,
                 exif: bytes | None = None, quality: int = 95) -> bytes:
    """``img`` encoded in memory as ``format`` (PNG, JPEG, WEBP, TIFF), as :func:`save_image`
    would write it; for the web server, which never writes uploads or results to disk.

    Example:
        >>> encode_image(Image.new("RGB", (4, 4)), "png")[:8]
        b'\\x89PNG\\r\\n\\x1a\\n'
    """
    buf = io.BytesIO()
    try:
        _write(img, buf, format, icc_profile, exif, quality)
    except OSError as e:  # in memory, only the encoder itself fails
        raise ImageError(None, f"cannot write as {format.upper()}: {e}", kind="unencodable") from None
    return buf.getvalue()


def save_image(img: Image.Image | Photo, path: str | os.PathLike, format: str | None = None,
               icc_profile: bytes | None = None, exif: bytes | None = None, quality: int = 95) -> Path:
    """Write ``img`` (a :class:`Photo` or PIL image) atomically; returns the path.

    Alpha is dropped for formats without it (JPEG). JPEG and WebP are written at ``quality``.
    ICC profile and EXIF: as given, else the image's own (see :func:`encode_image`).

    Raises:
        ImageError: one line naming the file, e.g. when the folder is not writable.
    """
    path = Path(path)
    fmt = (format or suffix_format(path.suffix) or "PNG").upper()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ImageError(path, f"cannot write: cannot make folder {path.parent} ({e.strerror or e})", kind="io") from None
    try:
        with atomic_open(path) as f:
            _write(img, f, fmt, icc_profile, exif, quality)
    except ImageError as e:
        raise ImageError(path, e.cause, e.kind) from None
    except OSError as e:
        raise ImageError(path, f"cannot write: {e.strerror or e}", kind="io") from None
    return path
