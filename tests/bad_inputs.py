"""The bad and unusual inputs shared by the command-line, server and fuzz tests, all made here.

:func:`corpus` gives 40+ kinds of file (bombs, truncations, odd modes, odd names, the defects of
issue 10), each with what must happen to it; :func:`seeds` gives one valid small photo in every
format Pillow here can both write and read, for the mutation fuzzer.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageCms
from skimage import data

RGB = np.array(Image.fromarray(data.chelsea()).resize((64, 48)))  # (48, 64, 3)
GREY = np.array(Image.fromarray(RGB).convert("L"))


class Kind(NamedTuple):
    """One corpus file: its bytes, the output size it must give ((width, height); None: it must
    fail, with one line), and the output formats that cannot hold it (it fails as those)."""

    blob: bytes
    size: tuple[int, int] | None
    unwritable_as: tuple[str, ...] = ()


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png(img: Image.Image, **kw) -> bytes:
    return save(img, "PNG", **kw)


def bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (the IHDR patched, CRC fixed)."""
    raw = bytearray(png(Image.new("L", (8, 8))))
    ihdr = raw[12:29]  # b"IHDR" + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(raw)


def exif_bytes(**tags: str | int) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[int(tag.lstrip("t"), 16)] = value
    return exif.tobytes()


def corrupt_avif() -> bytes:
    """An AVIF whose header promises 80-bit samples: Pillow opens it, then its decoder raises
    RuntimeError (not OSError)."""
    blob = bytearray(save(Image.fromarray(RGB), "AVIF"))
    blob[blob.index(b"pixi") + 9] = 80  # pixi box: version/flags (4), channel count (1), depths
    return bytes(blob)


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    if fmt == "GIF":
        frames = [f.convert("P") for f in frames]
    return save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def corpus() -> dict[str, Kind]:
    """name (relative path) -> :class:`Kind`. No two names share a stem, so no two outputs collide."""
    rgba = np.dstack([RGB, np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))])
    jpeg = save(Image.fromarray(RGB), "JPEG")
    photo = png(Image.fromarray(RGB))
    webp = save(Image.fromarray(RGB), "WEBP")
    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    transparent = Image.fromarray(RGB).convert("P")
    transparent.info["transparency"] = 0
    return {
        "zero-bytes.jpg": Kind(b"", None),
        "truncated.jpg": Kind(jpeg[: len(jpeg) // 2], None),
        "truncated.png": Kind(photo[: len(photo) // 2], None),
        "truncated.webp": Kind(webp[: len(webp) // 2], None),
        "text-renamed.jpg": Kind(b"this is not an image\n" * 20, None),
        "html-renamed.png": Kind(b"<!doctype html><html><body>404</body></html>\n", None),
        "zip-renamed.jpg": Kind(b"PK\x03\x04" + bytes(200), None),
        "header-only.png": Kind(photo[:33], None),  # signature and IHDR, no pixels
        "bomb-900mp.png": Kind(bomb(30000, 30000), None),   # beyond Pillow's own limit
        "bomb-144mp.png": Kind(bomb(12000, 12000), None),   # beyond dlnet's 120 MP limit
        "bomb-wide-200mp.png": Kind(bomb(200000, 1000), None),
        "corrupt.avif": Kind(corrupt_avif(), None),  # issue 10, defect 1
        "camera.avif": Kind(save(Image.fromarray(RGB), "AVIF"), (64, 48)),
        "one-pixel.png": Kind(png(Image.new("RGB", (1, 1), (90, 90, 90))), (1, 1)),
        "wide-3x100000.png": Kind(png(Image.new("L", (100000, 3), 128)), (100000, 3), ("jpeg", "webp")),
        "tall-5000x1.png": Kind(png(Image.new("L", (1, 5000), 90)), (1, 5000)),
        "wide-20000x2.png": Kind(png(Image.new("L", (20000, 2), 128)), (20000, 2), ("webp",)),  # defect 2
        "wide-70000x2.png": Kind(png(Image.new("L", (70000, 2), 128)), (70000, 2), ("jpeg", "webp")),
        "exif-70kb.png": Kind(png(Image.fromarray(RGB), exif=exif_bytes(t010E="x" * 70_000)), (64, 48),
                              ("jpeg",)),  # defect 2: more EXIF than a JPEG holds
        "exif-garbage.jpg": Kind(save(Image.fromarray(RGB), "JPEG", exif=b"Exif\x00\x00" + bytes(range(256)) * 4),
                                 (64, 48)),
        "grey-16bit.png": Kind(png(Image.fromarray(GREY.astype(np.uint16) * 257)), (64, 48)),
        "grey-32bit-int.tif": Kind(save(Image.fromarray(GREY.astype(np.int32) * 65793), "TIFF"), (64, 48)),
        "cmyk.jpg": Kind(save(Image.fromarray(RGB).convert("CMYK"), "JPEG"), (64, 48)),
        "cmyk-tiff.tif": Kind(save(Image.fromarray(RGB).convert("CMYK"), "TIFF"), (64, 48)),
        "palette-png.png": Kind(png(Image.fromarray(RGB).convert("P")), (64, 48)),
        "palette.gif": Kind(save(Image.fromarray(RGB).convert("P"), "GIF"), (64, 48)),
        "transparent-palette.png": Kind(png(transparent), (64, 48)),
        "animated.gif": Kind(animated("GIF"), (64, 48)),
        "animated-webp.webp": Kind(animated("WEBP"), (64, 48)),
        "alpha.png": Kind(png(Image.fromarray(rgba)), (64, 48)),
        "grey-alpha.png": Kind(png(Image.fromarray(rgba[..., [0, 3]], "LA")), (64, 48)),
        "exif-rotated.jpg": Kind(save(Image.fromarray(RGB), "JPEG", exif=exif_bytes(t0112=6)), (48, 64)),
        "float.tif": Kind(save(Image.fromarray(GREY.astype(np.float32) / 255), "TIFF"), (64, 48)),
        "grey-16bit-tiff.tif": Kind(save(Image.fromarray(GREY.astype(np.uint16) * 257), "TIFF"), (64, 48)),
        "bilevel.png": Kind(png(Image.fromarray(GREY > 128)), (64, 48)),
        "photo.webp": Kind(webp, (64, 48)),
        "bitmap.bmp": Kind(save(Image.fromarray(RGB), "BMP"), (64, 48)),
        "jpeg2000.jp2": Kind(save(Image.fromarray(RGB), "JPEG2000"), (64, 48)),
        "targa.tga": Kind(save(Image.fromarray(RGB), "TGA"), (64, 48)),
        "progressive.jpg": Kind(save(Image.fromarray(RGB), "JPEG", progressive=True), (64, 48)),
        "with-icc.png": Kind(png(Image.fromarray(RGB), icc_profile=srgb_icc), (64, 48)),
        "café ünï 写真.png": Kind(photo, (64, 48)),
        "my old photo.jpg": Kind(jpeg, (64, 48)),
        "tab\there.png": Kind(photo, (64, 48)),
        "two\nlines.jpg": Kind(b"not a photo", None),  # defect 6: its error must stay one line
        "a" * 251 + ".png": Kind(photo, (64, 48), ("webp",)),  # defect 4: 255 bytes, the longest
        # valid name (as .webp, 256 bytes: too long, one line)
        "é" * 119 + ".jpg": Kind(jpeg, (64, 48)),  # 242 bytes
        "sub/deeper/nested.jpg": Kind(jpeg, (64, 48)),
        "blocked/inside.png": Kind(photo, (64, 48)),  # but the CLI finds its output folder blocked
    }


def seeds() -> dict[str, bytes]:
    """One valid 24x16 photo in every format Pillow here both writes and reads: format -> bytes."""
    Image.init()
    img = Image.fromarray(RGB[:16, :24])
    out = {}
    for fmt in sorted(set(Image.SAVE) & set(Image.OPEN)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated formats (IM) are still read
                blob = save(img if fmt not in ("XBM",) else img.convert("1"), fmt)
                with Image.open(io.BytesIO(blob)) as back:
                    back.load()
        except Exception:  # a format whose writer needs more (a plug-in, Ghostscript, a size)
            continue
        out[fmt] = blob
    return out
