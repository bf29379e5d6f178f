"""Bad and unusual inputs through ``dlnet colorize``: a corpus of 25+ kinds made here.

Each file gives either a correct output or exactly one stderr line naming it and the cause; the
batch carries on; the exit code is 1 when anything failed; no input file ever changes.
"""

import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage import data

from _tiny_model import tiny_model_file

from dlnet.cli import main

RGB = np.array(Image.fromarray(data.chelsea()).resize((64, 48)))  # (48, 64, 3)
GREY = np.array(Image.fromarray(RGB).convert("L"))


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (the IHDR patched, CRC fixed)."""
    raw = bytearray(_png_bytes(Image.new("L", (8, 8))))
    ihdr = raw[12:29]  # b"IHDR" + 13 bytes of data
    ihdr[4:12] = struct.pack(">II", width, height)
    raw[12:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(raw)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _animated_gif() -> bytes:
    frames = [Image.fromarray(RGB).convert("P"), Image.fromarray(255 - RGB).convert("P")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buf.getvalue()


def _corpus() -> dict[str, tuple[bytes, tuple[int, int] | None]]:
    """name -> (file bytes, expected output (width, height), or None if it must fail)."""
    rgba = np.dstack([RGB, np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))])
    jpeg = _save(Image.fromarray(RGB), "JPEG")
    png = _png_bytes(Image.fromarray(RGB))
    srgb_icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return {
        "zero-bytes.jpg": (b"", None),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], None),
        "truncated.png": (png[: len(png) // 2], None),
        "text-renamed.jpg": (b"this is not an image\n" * 20, None),
        "bomb-900mp.png": (_bomb(30000, 30000), None),   # beyond Pillow's own limit
        "bomb-144mp.png": (_bomb(12000, 12000), None),   # beyond dlnet's 120 MP limit
        "one-pixel.png": (_png_bytes(Image.new("RGB", (1, 1), (90, 90, 90))), (1, 1)),
        "wide-3x100000.png": (_png_bytes(Image.new("L", (100000, 3), 128)), (100000, 3)),
        "grey-16bit.png": (_png_bytes(Image.fromarray(GREY.astype(np.uint16) * 257)), (64, 48)),
        "cmyk.jpg": (_save(Image.fromarray(RGB).convert("CMYK"), "JPEG"), (64, 48)),
        "palette.png": (_png_bytes(Image.fromarray(RGB).convert("P")), (64, 48)),
        "palette.gif": (_save(Image.fromarray(RGB).convert("P"), "GIF"), (64, 48)),
        "animated.gif": (_animated_gif(), (64, 48)),
        "alpha.png": (_png_bytes(Image.fromarray(rgba)), (64, 48)),
        "grey-alpha.png": (_png_bytes(Image.fromarray(rgba[..., [0, 3]], "LA")), (64, 48)),
        "exif-rotated.jpg": (_exif_rotated(), (48, 64)),  # displayed upright: width and height swap
        "float.tif": (_save(Image.fromarray(GREY.astype(np.float32) / 255), "TIFF"), (64, 48)),
        "grey-16bit.tif": (_save(Image.fromarray(GREY.astype(np.uint16) * 257), "TIFF"), (64, 48)),
        "bilevel.png": (_png_bytes(Image.fromarray(GREY > 128)), (64, 48)),
        "photo.webp": (_save(Image.fromarray(RGB), "WEBP"), (64, 48)),
        "photo.bmp": (_save(Image.fromarray(RGB), "BMP"), (64, 48)),
        "with-icc.png": (_save(Image.fromarray(RGB), "PNG", icc_profile=srgb_icc), (64, 48)),
        "café ünï 写真.png": (png, (64, 48)),
        "my old photo.jpg": (jpeg, (64, 48)),
        "sub/deeper/nested.jpg": (jpeg, (64, 48)),
        "blocked/inside.png": (png, None),  # its output folder is blocked by a file (below)
    }


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(tiny_model_file(tmp_path_factory.mktemp("model")))


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = _corpus()
    for name, (blob, _) in expected.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    return tmp_path, expected


def _output_for(out: Path, name: str) -> Path:
    path = out / "in" / name
    if path.suffix in (".png", ".jpg", ".webp", ".tif"):
        return path
    # Other formats become PNG; palette.gif -> palette.gif.png, as palette.png takes palette.png.
    return path.with_name(path.name + ".png") if path.with_suffix(".png").name == "palette.png" else path.with_suffix(".png")


def test_corpus_each_file_gives_output_or_one_clear_line(corpus, weights, capsys):
    root, expected = corpus
    out = root / "out"
    (out / "in").mkdir(parents=True)
    (out / "in" / "blocked").write_text("a file where the output folder should be")
    before = _hashes(root / "in")

    code = main(["colorize", "in", "-o", "out", "--weights", weights, "--size", "64", "--batch-size", "4"])
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()

    assert code == 1
    assert _hashes(root / "in") == before, "an input file changed"
    n_bad = sum(v is None for _, v in expected.values())
    assert captured.out.strip().splitlines()[-1] == f"{len(expected) - n_bad} colorized, 0 skipped, {n_bad} failed"
    assert len(err_lines) == n_bad
    for name, (_, size) in expected.items():
        mine = [line for line in err_lines if line.startswith(str(Path("in") / name) + ": ")]
        if size is None:
            assert len(mine) == 1, f"{name}: expected one error line, got {mine}"
            assert len(mine[0].split(": ", 1)[1]) > 5  # a cause is given
        else:
            assert not mine, mine
            with Image.open(_output_for(out, name)) as img:
                assert img.size == size, name
    # Details that the outputs keep.
    with Image.open(out / "in" / "alpha.png") as img:
        assert img.mode == "RGBA" and np.array(img)[..., 3].min() == 0
    with Image.open(out / "in" / "with-icc.png") as img:
        assert img.info.get("icc_profile")
    with Image.open(out / "in" / "exif-rotated.jpg") as img:  # turned upright once, not twice
        assert img.getexif().get(0x0112, 1) == 1
    with Image.open(out / "in" / "cmyk.jpg") as img:
        assert img.mode == "RGB" and not img.info.get("icc_profile")
    assert "decompression bomb" in captured.err and "empty file" in captured.err
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"

    # A second run skips what exists and still reports the bad files.
    assert main(["colorize", "in", "-o", "out", "--weights", weights, "--size", "64"]) == 1
    assert capsys.readouterr().out.strip().endswith(f"0 colorized, {len(expected) - n_bad} skipped, {n_bad} failed")


def test_output_equal_to_input_is_refused(corpus, weights, capsys):
    root, _ = corpus
    target = root / "in" / "my old photo.jpg"
    before = target.read_bytes()
    # Input in/x.jpg with -o . would be written to ./in/x.jpg: the input itself.
    code = main(["colorize", "in/my old photo.jpg", "in/café ünï 写真.png", "-o", ".", "--weights", weights,
                 "--size", "64", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and target.read_bytes() == before
    assert err.count("would overwrite an input") == 2


def test_output_format_option_and_missing_paths(corpus, weights, capsys):
    code = main(["colorize", "in/photo.webp", "in/nothing-here.png", "in/*.nomatch", "-o", "o2",
                 "--format", "jpeg", "--weights", weights, "--size", "64"])
    captured = capsys.readouterr()
    assert code == 1
    assert Path("o2/in/photo.jpg").is_file()
    assert "in/nothing-here.png: no such file" in captured.err and "in/*.nomatch: no files match" in captured.err
    assert captured.out.strip().endswith("1 colorized, 0 skipped, 2 failed")


def test_side_by_side_and_rebalance_options(corpus, weights, capsys):
    code = main(["colorize", "in/photo.webp", "in/alpha.png", "-o", "o4", "--weights", weights, "--size", "64",
                 "--side-by-side", "--rebalance"])
    assert code == 0, capsys.readouterr().err
    for name in ("photo.webp", "alpha.png"):
        with Image.open(Path("o4/in") / name) as img:
            assert img.size == (128, 48) and img.mode == "RGB"  # grey | colour, no alpha


def test_unwritable_output_folder(corpus, weights, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions (the blocked-folder case covers write failures)")
    out = Path("ro")
    out.mkdir()
    out.chmod(0o500)
    try:
        code = main(["colorize", "in/photo.bmp", "-o", "ro", "--weights", weights, "--size", "64"])
    finally:
        out.chmod(0o700)
    assert code == 1 and "in/photo.bmp: cannot write" in capsys.readouterr().err


def test_usage_errors_exit_2(corpus, weights, capsys):
    Path("a-file").write_text("x")
    assert main(["colorize", "in/photo.bmp", "-o", "a-file", "--weights", weights]) == 2
    assert main(["colorize", "in/photo.bmp", "-o", "o3", "--weights", "no-such-model"]) == 2
    assert main(["colorize", "in/photo.bmp", "-o", "o3", "--weights", weights, "--batch-size", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("dlnet colorize: error: ") for line in err)


def test_real_console_script(corpus, weights):
    script = shutil.which("dlnet") or str(Path(sys.executable).with_name("dlnet"))
    root, _ = corpus
    proc = subprocess.run([script, "colorize", "in/zero-bytes.jpg", "in/my old photo.jpg", "-o", "out",
                           "--weights", weights, "--size", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "in/zero-bytes.jpg: empty file (0 bytes)"
    assert proc.stdout.strip() == "1 colorized, 0 skipped, 1 failed"
    assert (root / "out" / "in" / "my old photo.jpg").is_file()
