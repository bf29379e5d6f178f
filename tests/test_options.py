"""InferenceOptions (typed, checked when built) and the one photo path: the command line, the
server and the Python API give the same output, keeping alpha, ICC profile and EXIF alike."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageCms

from _tiny_model import tiny_model_file

from dlnet.apps.cli import main
from dlnet.infer.colorizer import Colorizer
from dlnet.io.imageio import save_image
from dlnet.infer.options import DEFAULT_SIZE, InferenceOptions, OptionError
from dlnet.color.rebalance import RebalanceConfig
from dlnet.apps.serve import ServeSettings, create_app


def test_defaults_live_in_one_place():
    d = InferenceOptions()
    assert (d.size, d.format, d.quality, d.max_pixels) == (DEFAULT_SIZE, None, 95, 120_000_000)
    assert ServeSettings().default_size == d.size == Colorizer.__init__.__defaults__[1]


def test_values_are_normalised_to_one_form():
    o = InferenceOptions(size=None, rebalance=True, format="JPG", quality=80, max_megapixels=2)
    assert o.size is None and o.rebalance == RebalanceConfig() and o.format == "jpeg" and o.max_pixels == 2_000_000
    assert InferenceOptions(rebalance=False).rebalance is None
    assert o.replace(format="tif").format == "tiff"
    with pytest.raises(OptionError):
        o.replace(quality=0)


@pytest.mark.parametrize("field, value", [
    ("size", 31), ("size", 0), ("size", -256), ("size", 64.0), ("size", True),
    ("rebalance", "default"), ("rebalance", 1), ("format", "gif"), ("format", ""),
    ("quality", 0), ("quality", 101), ("quality", 90.5),
    ("max_megapixels", math.nan), ("max_megapixels", math.inf), ("max_megapixels", 0), ("max_megapixels", "9"),
    ("saturation", -0.5), ("saturation", 4.5), ("saturation", True), ("saturation", math.nan),
])
def test_bad_values_are_refused_when_built(field, value):
    with pytest.raises(OptionError) as err:
        InferenceOptions(**{field: value})
    assert err.value.field == field and str(err.value).startswith(f"{field} must ")
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(tiny_model_file(tmp_path_factory.mktemp("model")))


def test_model_flag_is_one_word_with_the_old_names_kept(tmp_path, monkeypatch, weights, capsys):
    monkeypatch.chdir(tmp_path)
    Image.new("L", (40, 30), 100).save("grey.png")
    for flag, out in (("--model", "a"), ("--weights", "b")):
        assert main(["colorize", "grey.png", flag, weights, "-o", out, "--size", "64"]) == 0
    assert (tmp_path / "a" / "grey.png").read_bytes() == (tmp_path / "b" / "grey.png").read_bytes()
    assert main(["colorize", "grey.png", "--model", "no-such-model", "-o", "c"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def _photo_with_everything() -> bytes:
    """An RGBA PNG with a gradient alpha, an sRGB ICC profile and EXIF (Artist)."""
    rng = np.random.default_rng(0)
    rgba = np.dstack([rng.integers(0, 256, (40, 56, 3)), np.tile(np.linspace(0, 255, 56), (40, 1))])
    exif = Image.Exif()
    exif[0x013B] = "dlnet tests"
    buf = io.BytesIO()
    Image.fromarray(rgba.astype(np.uint8), "RGBA").save(
        buf, "PNG", exif=exif.tobytes(), icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    return buf.getvalue()


def test_cli_server_and_api_give_the_same_photo(tmp_path, monkeypatch, weights):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "photo.png"
    src.write_bytes(_photo_with_everything())
    assert main(["colorize", "photo.png", "--model", weights, "-o", "cli", "--size", "64"]) == 0
    colorizer = Colorizer.from_pretrained(weights, device="cpu", batch_size=8)  # the CLI's precision
    app = create_app(colorizer, ServeSettings(default_size=64))
    resp = TestClient(app).post("/v1/colorize", files={"file": ("photo.png", src.read_bytes(), "image/png")})
    assert resp.status_code == 200, resp.text
    (tmp_path / "server.png").write_bytes(resp.content)
    save_image(colorizer.colorize(src, InferenceOptions(size=64)), tmp_path / "api.png")

    with Image.open(src) as original:
        alpha, icc = np.asarray(original.getchannel("A")), original.info["icc_profile"]
    outputs = [Image.open(p) for p in (tmp_path / "cli" / "photo.png", tmp_path / "server.png", tmp_path / "api.png")]
    for out in outputs:
        assert out.mode == "RGBA" and out.size == (56, 40)
        np.testing.assert_array_equal(np.asarray(out.getchannel("A")), alpha)
        assert out.info.get("icc_profile") == icc and out.getexif().get(0x013B) == "dlnet tests"
        assert np.abs(np.asarray(out, dtype=int) - np.asarray(outputs[0], dtype=int)).max() <= 1


@pytest.mark.parametrize("command, args, dest, value", [
    ("serve", ["--model", "m.safetensors"], "model", "m.safetensors"),
    ("serve", ["--weights", "m.safetensors"], "model", "m.safetensors"),
    ("export", ["-o", "x.onnx", "--model", "m"], "model", "m"),
    ("evaluate", ["--data", "d", "--out", "o", "--model", "a=x.ckpt", "--checkpoint", "b=y.ckpt"],
     "checkpoints", ["a=x.ckpt", "b=y.ckpt"]),
])
def test_every_command_takes_the_same_model_word(command, args, dest, value):
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(f"dlnet.apps.commands.{command}").configure(parser)
    assert getattr(parser.parse_args(args), dest) == value
