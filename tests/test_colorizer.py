"""The Python API: Colorizer.colorize / colorize_batch, and the full-resolution colour path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data

from _tiny_model import tiny_model

from dlnet.color.lab import merge_l_ab, rgb_to_lab
from dlnet.infer.colorizer import Colorizer
from dlnet.color.fullres import lightness, merge_rgb8
from dlnet.color.rebalance import Rebalance, RebalanceConfig


class ConstantAb(torch.nn.Module):
    """A 'model' that predicts one colour everywhere: a*=30 (red), b*=20 (yellow)."""

    def forward(self, l):
        return torch.tensor([30.0, 20.0]).view(1, 2, 1, 1).expand(l.shape[0], 2, *l.shape[2:]).clone()


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer(tiny_model(), "cpu", size=64, precision="fp32")


@pytest.fixture(scope="module")
def photo():
    return np.array(Image.fromarray(data.astronaut()).resize((96, 80)))  # (80, 96, 3) uint8


def _l(rgb) -> np.ndarray:
    x = torch.from_numpy(np.asarray(rgb, np.float32) / 255).permute(2, 0, 1)[None]
    return rgb_to_lab(x)[0, 0].numpy()


def test_accepts_path_pil_and_numpy_alike(colorizer, photo, tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(photo).save(path)
    results = [np.asarray(colorizer.colorize(src)) for src in (str(path), path, Image.open(path), photo)]
    for r in results:
        assert r.shape == photo.shape and r.dtype == np.uint8
        np.testing.assert_array_equal(r, results[0])


def test_array_shapes_and_dtypes(colorizer, photo):
    grey = np.array(Image.fromarray(photo).convert("L"))
    ref = np.asarray(colorizer.colorize(grey), dtype=int)
    variants = {
        "HxWx3 uint8": np.repeat(grey[..., None], 3, axis=2),
        "HxWx4 uint8": np.dstack([grey, grey, grey, np.full_like(grey, 255)]),
        "HxW uint16": grey.astype(np.uint16) * 257,
        "HxW float 0..1": grey.astype(np.float32) / 255,
        "HxWx3 float64 0..1": np.repeat(grey[..., None], 3, axis=2) / 255.0,
    }
    for name, arr in variants.items():
        out = colorizer.colorize(arr)
        assert out.mode == "RGB" and out.size == (96, 80), name
        assert np.abs(np.asarray(out, dtype=int) - ref).max() <= 1, name


@pytest.mark.parametrize("h, w", [(67, 131), (131, 67), (1, 1), (33, 5)])
def test_output_size_equals_input_size(colorizer, h, w):
    img = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = colorizer.colorize(img)
    assert out.mode == "RGB" and out.size == (w, h)


def test_full_resolution_l_is_preserved(colorizer, photo):
    out = colorizer.colorize(photo)
    diff = np.abs(_l(out) - _l(photo))
    # 8-bit rounding moves L* by < 0.5; only colours pushed out of gamut are clipped further.
    assert np.median(diff) < 0.5 and diff.mean() < 1.0


def test_grey_input_gets_colour_from_the_model(photo):
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    out = np.asarray(Colorizer(ConstantAb(), "cpu", size=64, precision="fp32").colorize(grey), dtype=int)
    mid = out[(grey > 60) & (grey < 200)]  # away from black and white, where chroma vanishes
    assert (mid[:, 0] > mid[:, 2] + 10).mean() > 0.95  # red-yellow: R well above B
    # ... and a random-init DLNet, too, gives a non-grey result.
    out = np.asarray(Colorizer(tiny_model(seed=3), "cpu", size=64, precision="fp32").colorize(grey), dtype=int)
    assert np.abs(out[..., 0] - out[..., 2]).mean() > 1


def test_colour_and_sepia_inputs_are_colorized_from_their_l(photo):
    c = Colorizer(ConstantAb(), "cpu", size=64, precision="fp32")
    sepia = np.clip(photo.mean(-1, keepdims=True) * np.array([1.0, 0.85, 0.6]), 0, 255).astype(np.uint8)
    for src in (photo, sepia):
        expected = np.asarray(c.colorize(np.asarray(Image.fromarray(src).convert("L"))), dtype=int)
        got = np.asarray(c.colorize(src), dtype=int)
        assert np.median(np.abs(_l(got.astype(np.uint8)) - _l(src))) < 0.5  # (dark reds clip)
        assert np.abs(got - expected).mean() < 3  # same colour as the grey version, up to L


def test_batch_equals_single(colorizer, photo):
    images = [photo, photo[:67, :90], np.ascontiguousarray(photo[::-1]), photo[:40, :33]]
    batch = colorizer.colorize_batch(images)
    for img, b in zip(images, batch):
        single = np.asarray(colorizer.colorize(img), dtype=int)
        assert np.abs(single - np.asarray(b, dtype=int)).max() <= 1


def test_same_result_as_the_tensor_path(colorizer, photo):
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    ref = (colorizer.colorize_tensor(x)[0].permute(1, 2, 0) * 255).round().numpy().astype(int)
    assert np.abs(np.asarray(colorizer.colorize(photo), dtype=int) - ref).max() <= 1


def test_side_by_side_is_grey_then_colour(photo):
    out = np.asarray(Colorizer(ConstantAb(), "cpu", size=64, precision="fp32").colorize(photo, side_by_side=True))
    grey, colour = out[:, :96], out[:, 96:]
    assert out.shape == (80, 192, 3)
    assert np.abs(grey.astype(int) - grey[..., :1]).max() == 0  # R = G = B
    assert np.abs(_l(grey) - _l(photo)).mean() < 0.5 and np.abs(colour[..., 0].astype(int) - colour[..., 2]).mean() > 5


def test_rebalance_runs_at_working_size(photo, monkeypatch):
    from dlnet.color import rebalance

    seen = []
    run = rebalance.Rebalance.__call__

    def spy(self, ab, l):
        seen.append((tuple(ab.shape), tuple(l.shape)))
        return run(self, ab, l)

    monkeypatch.setattr(rebalance.Rebalance, "__call__", spy)
    out = Colorizer(tiny_model(), "cpu", size=64, precision="fp32", rebalance=RebalanceConfig(k1=3)).colorize(photo)
    assert seen == [((1, 2, 64, 64), (1, 1, 64, 64))]  # 80x96 -> working 53x64 -> multiples of 32
    assert out.size == (96, 80)


@pytest.mark.parametrize("size, rebalance", [(16, None), (64, lambda ab, l: ab), (64, "yes")])
def test_the_shorthand_takes_what_the_options_take(size, rebalance):
    """One range and one set of spellings: a size below 32 was clamped here and refused by the
    options; rebalance took six spellings here (functions among them), two there."""
    from dlnet.infer.options import OptionError

    with pytest.raises(OptionError):
        Colorizer(tiny_model(), "cpu", size=size, rebalance=rebalance)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_fullres_lightness_matches_kornia(dtype):
    rgb = np.random.default_rng(0).integers(0, 256, (37, 300, 3), dtype=np.uint8)
    src = rgb if dtype == np.uint8 else rgb.astype(np.float32) / 255
    np.testing.assert_allclose(lightness(src), _l(rgb), atol=1e-3)


def test_fullres_merge_matches_kornia_including_upsampling():
    g = torch.Generator().manual_seed(0)
    l = torch.rand(1, 1, 70, 150, generator=g) * 100
    ab = (torch.rand(1, 2, 10, 20, generator=g) - 0.5) * 220  # includes out-of-gamut colours
    full = F.interpolate(ab, size=(70, 150), mode="bilinear", align_corners=False)
    ref = (merge_l_ab(l, full)[0].permute(1, 2, 0) * 255).round().numpy().astype(int)
    got = merge_rgb8(l[0, 0].numpy(), ab[0]).astype(int)
    assert np.abs(got - ref).max() <= 1
    grey = merge_rgb8(l[0, 0].numpy(), None).astype(int)
    ref_grey = (merge_l_ab(l, torch.zeros_like(full))[0].permute(1, 2, 0) * 255).round().numpy().astype(int)
    assert np.abs(grey - ref_grey).max() <= 1
