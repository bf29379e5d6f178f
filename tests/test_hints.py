"""Colour hints (issue 28): parsing and checking, hint maps, propagation, and the inference path
(PyTorch and ONNX, learned and propagated) through the public API."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dlnet import Colorizer, Hint, InferenceOptions
from dlnet.color.fullres import srgb_to_lab
from dlnet.color.propagate import hint_map, propagate
from dlnet.infer.options import OptionError
from dlnet.io.hints import MAX_HINTS, HintError, load_hints, parse_hints, sidecar_path
from dlnet.model.net import DLNet, ModelConfig

RED = (160, 48, 32)  # "#a03020"


def _ab(rgb) -> np.ndarray:
    return srgb_to_lab(np.asarray(rgb, np.float64))[..., 1:]


def _two_regions(h=96, w=128) -> np.ndarray:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2], rgb[:, w // 2:] = 50, 200
    return rgb


def _hint_model(seed: int = 0) -> DLNet:
    """A tiny hint model whose hint weights are not zero (as if trained), so hints change its output."""
    torch.manual_seed(seed)
    model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8),
                              hints=True)).eval()
    with torch.no_grad():
        stem = model.encoder.trunk.conv_stem.weight
        stem[:, 1:] = 0.5 * torch.randn_like(stem[:, 1:])
    return model


# --- parsing and checking ---------------------------------------------------------------------

@pytest.mark.parametrize("value", [Hint(3, 4, "#a03020"), {"x": 3, "y": 4, "color": "#a03020"}, "3,4,#a03020",
                                   "3, 4, rgb(160, 48, 32)", {"x": 3.0, "y": 4, "color": [160, 48, 32]}])
def test_every_way_of_giving_a_hint_reads_the_same(value):
    assert parse_hints([value]) == (Hint(3.0, 4.0, RED),)


@pytest.mark.parametrize("value, words", [
    ({"x": math.nan, "y": 1, "color": "red"}, "x must be a finite number"),
    ({"x": 1, "y": math.inf, "color": "red"}, "y must be a finite number"),
    ({"x": 1, "y": 2, "color": "reddish"}, "'reddish' is not a colour"),
    ({"x": 1, "y": 2, "color": [300, 0, 0]}, "three numbers 0..255"),
    ({"x": 1, "y": 2, "colour": "red"}, "unknown ['colour']"),
    ({"x": 1, "y": 2, "color": "red", "radius": 0}, "radius must be > 0"),
    ("1,2", "is not x,y,colour"),
    (7, "got int"),
])
def test_a_bad_hint_is_one_line_naming_it(value, words):
    with pytest.raises(HintError) as e:
        parse_hints([{"x": 1, "y": 1, "color": "blue"}, value])
    assert str(e.value).startswith("hint 2: ") and words in str(e.value) and "\n" not in str(e.value)


def test_more_than_the_limit_is_refused_and_options_check_hints_once():
    ok = [{"x": 1, "y": 1, "color": "red"}]
    with pytest.raises(HintError, match=f"at most {MAX_HINTS}"):
        parse_hints(ok * (MAX_HINTS + 1))
    assert InferenceOptions(hints=ok).hints == (Hint(1, 1, (255, 0, 0)),)
    with pytest.raises(OptionError, match="hints are not usable: hint 1: x must be"):
        InferenceOptions(hints=[{"x": "left", "y": 1, "color": "red"}])
    with pytest.raises(OptionError, match="hint_method must be one of learned, propagate"):
        InferenceOptions(hint_method="magic")


def test_hint_files_and_sidecars(tmp_path):
    good = tmp_path / "hints.json"
    good.write_text(json.dumps([{"x": 3, "y": 4, "color": "#a03020", "radius": 2}]))
    assert load_hints(good) == (Hint(3, 4, RED, 2.0),)
    for name, text, words in [("broken.json", "[{", "not a JSON list of hints (line 1"),
                              ("dict.json", '{"x": 1}', "hints must be a list"),
                              ("bad.json", '[{"x": 1, "y": 2, "color": "nope"}]', "hint 1: color 'nope'")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(HintError) as e:
            load_hints(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: ") and words in str(e.value)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(HintError, match="not a JSON list of hints"):
        load_hints(tmp_path / "binary.json")
    with pytest.raises(HintError, match="no such hints file"):
        load_hints(tmp_path / "missing.json")
    assert sidecar_path(tmp_path / "album" / "grandma.jpg") == tmp_path / "album" / "grandma.hints.json"


# --- hint maps and propagation ------------------------------------------------------------------

def test_a_hint_map_covers_the_pixels_inside_the_hints_square_at_the_working_scale():
    # a 256 px photo at working size 128: a 6 x 6 patch centred on a working pixel's centre -> 3 x 3
    m = hint_map([Hint(101, 51, RED, 3)], (256, 256), (128, 128))
    ys, xs = np.nonzero(m[2])
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (24, 26, 49, 51)  # centre (50.5, 25.5): 3 x 3
    np.testing.assert_allclose(m[:2, 25, 50], _ab(RED), atol=1e-4)
    tiny = hint_map([Hint(10.2, 10.2, RED, 0.1)], (256, 256), (128, 128))
    assert np.argwhere(tiny[2]).tolist() == [[5, 5]]  # smaller than a pixel: the pixel under it
    default = hint_map([Hint(10, 10, RED)], (20, 20), (20, 20))
    assert default[2].sum() == 4  # 1.5 working px around a pixel corner: 2 x 2
    later = hint_map([Hint(5, 5, RED, 2), Hint(5, 5, (0, 0, 255), 2)], (20, 20), (20, 20))
    np.testing.assert_allclose(later[:2, 5, 5], _ab((0, 0, 255)), atol=1e-4)  # the later hint wins


def test_propagation_fills_the_hinted_region_and_leaves_the_model_alone_without_hints():
    l = np.zeros((32, 32), np.float32)
    l[:, 16:] = 80
    pred = np.full((2, 32, 32), 5.0, np.float32)
    assert propagate(l, pred, np.zeros((3, 32, 32), np.float32)) is pred  # no hints: the model's own
    hints = hint_map([Hint(4, 4, RED, 1)], (32, 32), (32, 32))
    # solved at the working size and (the default) at half of it, where a decay per pixel reaches
    # twice as far: 4x the decay is the same reach
    for out in (propagate(l, pred, hints, decay=1e-3, coarsen=1), propagate(l, pred, hints, decay=4e-3)):
        np.testing.assert_allclose(out[:, 3:5, 3:5].reshape(2, -1).mean(1), _ab(RED), atol=1e-3)  # exact at the hint
        far_same = out[:, 28, 12] - pred[:, 28, 12]
        far_other = out[:, 28, 28] - pred[:, 28, 28]
        assert np.linalg.norm(far_same) > 2 * np.linalg.norm(far_other)  # more along L* than across the edge
    # the default decay (chosen on validation photos) lets one hint's correction reach almost everything
    spread = propagate(l, pred, hints)
    assert np.linalg.norm(spread[:, 28, 28] - pred[:, 28, 28]) > 0.8 * np.linalg.norm(_ab(RED) - pred[:, 0, 0])



def test_propagation_on_an_odd_working_size_keeps_its_shape_and_the_hints():
    rng = np.random.default_rng(0)
    l = rng.uniform(0, 100, (33, 31)).astype(np.float32)
    pred = rng.normal(0, 10, (2, 33, 31)).astype(np.float32)
    hints = hint_map([Hint(30.5, 32.5, RED, 1), Hint(0.5, 0.5, (0, 0, 255), 1)], (33, 31), (33, 31))
    out = propagate(l, pred, hints)
    assert out.shape == (2, 33, 31) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 32, 30], _ab(RED), atol=1e-3)  # in the padded last row and column
    np.testing.assert_allclose(out[:, 0, 0], _ab((0, 0, 255)), atol=1e-3)

# --- the inference path ---------------------------------------------------------------------------

def test_propagated_hints_colour_their_region_through_the_public_api():
    rgb = _two_regions()
    torch.manual_seed(0)  # an automatic model: propagation works with any
    colorizer = Colorizer(DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet",
                                            decoder_channels=(16, 16, 8, 8))).eval(), "cpu", size=64)
    hints = [Hint(20, 48, "#a03020", radius=8)]
    out = np.asarray(colorizer.colorize(rgb, InferenceOptions(size=64, hints=hints)))
    auto = np.asarray(colorizer.colorize(rgb, InferenceOptions(size=64)))
    near = _ab(out[48, 20])
    assert np.linalg.norm(near - _ab(RED)) < 8  # the hint's colour where it was put (8-bit rounding)
    lab_out, lab_auto = srgb_to_lab(out.astype(float))[..., 0], srgb_to_lab(auto.astype(float))[..., 0]
    # only a*b* change: the photo keeps its L* (to 8-bit rounding, and the sRGB gamut's clipping
    # of a saturated red on the dark side: 0.30 on average on an AVX-512 CPU, 0.2-0.3 on AVX2)
    assert np.abs(lab_out - lab_auto).mean() < 0.4 and np.abs(lab_out - lab_auto).max() < 1.5


def test_the_learned_method_feeds_the_hint_map_to_the_model_and_onnx_agrees(tmp_path):
    from dlnet.infer.export import export_onnx
    from dlnet.infer.onnxrun import OnnxColorizer, check_onnx

    model = _hint_model()
    rgb = _two_regions()
    options = InferenceOptions(size=64, hints=[Hint(20, 48, "#a03020", radius=8)], hint_method="learned")
    path = export_onnx(model, tmp_path / "hints.onnx")
    assert check_onnx(path, model) < 1e-3  # the same network, with and without hints
    for colorizer in (Colorizer(model, "cpu", size=64, precision="fp32"), OnnxColorizer(path)):
        assert colorizer.takes_hints and colorizer.hint_method(options) == "learned"
        with_hints, without = np.asarray(colorizer.colorize(rgb, options)), np.asarray(colorizer.colorize(rgb))
        assert np.abs(with_hints.astype(int) - without).max() > 5  # the hints reached the network


@pytest.mark.parametrize("saturation, seen_as", [(None, 1 / 0.8), (0.5, 2.0), (1.0, 1.0), (0.0, 1.0)])
def test_the_network_sees_a_hints_colour_in_its_own_units_before_the_gain(monkeypatch, saturation, seen_as):
    # A model saved with gain 0.8 predicts at gain 1 and the pipeline multiplies by the gain after
    # it: a hint must reach the network as colour / gain, or a learned hint comes out a fifth paler
    # than the colour chosen. (Gain 0, a grey photo, gives the hints as they are.)
    import dataclasses

    model = _hint_model()
    model.config = dataclasses.replace(model.config, saturation=0.8)
    colorizer = Colorizer(model, "cpu", size=64, precision="fp32")
    seen = []
    real = Colorizer.predict_ab
    monkeypatch.setattr(Colorizer, "predict_ab", lambda self, small, t, hints: seen.append(hints) or real(self, small, t, hints))
    hint = Hint(20, 48, "#a03020", radius=8)
    colorizer.colorize(_two_regions(), InferenceOptions(size=64, hints=[hint], hint_method="learned", saturation=saturation))
    got = seen[0][0].numpy()
    want = hint_map([hint], (96, 128), got.shape[1:])
    np.testing.assert_allclose(got[:2], want[:2] * seen_as, rtol=1e-6)
    np.testing.assert_array_equal(got[2], want[2])  # the mask is a mask


def test_propagation_on_a_hint_model_starts_from_the_prediction_that_saw_the_hints(monkeypatch):
    from dlnet.infer import pipeline

    model = _hint_model()
    colorizer = Colorizer(model, "cpu", size=64, precision="fp32")
    hint = Hint(20, 48, "#a03020", radius=8)
    assert colorizer.hint_method(InferenceOptions(hints=[hint])) == "propagate"  # the default, hint model or not
    seen = []
    monkeypatch.setattr(pipeline, "propagate", lambda l, ab, hints: seen.append(ab) or ab)
    colorizer.colorize(_two_regions(), InferenceOptions(size=64, hints=[hint]))
    learned = np.asarray(colorizer.colorize(_two_regions(), InferenceOptions(size=64, hints=[hint], hint_method="learned")))
    propagated_from = np.asarray(colorizer.colorize(_two_regions(), InferenceOptions(size=64, hints=[hint])))
    assert len(seen) == 2
    np.testing.assert_array_equal(propagated_from, learned)  # propagation (here a no-op) got the learned a*b*


def test_hints_the_model_cannot_take_or_outside_the_photo_are_one_line_errors():
    colorizer = Colorizer(DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet",
                                            decoder_channels=(16, 16, 8, 8))).eval(), "cpu", size=64)
    rgb = _two_regions()
    with pytest.raises(OptionError, match="learned needs a model with hint inputs"):
        colorizer.colorize(rgb, InferenceOptions(hints=[Hint(1, 1, "red")], hint_method="learned"))
    with pytest.raises(OptionError, match=r"hint 2 at \(129, 5\) is outside the 128x96 photo"):
        colorizer.colorize(rgb, InferenceOptions(hints=[Hint(1, 1, "red"), Hint(129, 5, "red")]))
    assert colorizer.hint_method(InferenceOptions(hints=[Hint(1, 1, "red")])) == "propagate"  # the default there


# --- the command line -----------------------------------------------------------------------------

def _album(root):
    (root / "album").mkdir()
    for name in ("a", "b", "c", "d"):
        Image.fromarray(_two_regions(64, 96)).save(root / "album" / f"{name}.png")
    (root / "album" / "a.hints.json").write_text('[{"x": 10, "y": 10, "color": "#a03020", "radius": 4}]')
    (root / "album" / "b.hints.json").write_text('[{"x": 10, "y": ')  # malformed
    (root / "album" / "c.hints.json").write_text('[{"x": 500, "y": 10, "color": "red"}]')  # outside
    (root / "album" / "lost.hints.json").write_text("[]")  # beside no photo


def test_the_command_line_takes_sidecars_and_flags_and_says_which_hints_failed(tmp_path, monkeypatch, capsys):
    from dlnet.apps.cli import main
    from _tiny_model import tiny_model_file

    monkeypatch.chdir(tmp_path)
    _album(tmp_path)
    weights = str(tiny_model_file(tmp_path))
    code = main(["colorize", "album", "-o", "out", "--model", weights, "--size", "64"])
    err = capsys.readouterr().err
    assert code == 2  # the user's hints were at fault: a usage error, but the batch went on
    assert sorted(p.name for p in (tmp_path / "out" / "album").iterdir()) == ["a.png", "d.png"]
    assert "album/b.png: album/b.hints.json: not a JSON list of hints" in err
    assert "album/c.png: hint 1 at (500, 10) is outside the 96x64 photo" in err
    assert "album/lost.hints.json: a hints sidecar beside no photo of that name" in err
    assert all(len(line) < 200 and "Traceback" not in line for line in err.splitlines())
    a, d = (np.asarray(Image.open(tmp_path / "out" / "album" / f"{n}.png")) for n in ("a", "d"))
    assert np.linalg.norm(_ab(a[10, 10]) - _ab(RED)) < 8 and np.abs(a.astype(int) - d).max() > 10  # a's own hint

    assert main(["colorize", "album/d.png", "-o", "flags", "--model", weights, "--size", "64",
                 "--hint", "10,10,#a03020,4"]) == 0
    flagged = np.asarray(Image.open(tmp_path / "flags" / "album" / "d.png"))
    np.testing.assert_array_equal(flagged, a)  # --hint gives what the same sidecar gave
    for bad, words in ((["--hint", "1,2"], "--hint 1,2: '1,2' is not x,y,colour"),
                       (["--hints", "nope.json"], "nope.json: no such hints file"),
                       (["--hint", "1,1,red", "--hint-method", "learned"], "learned needs a model with hint inputs")):
        assert main(["colorize", "album/d.png", "-o", "bad", "--model", weights, *bad]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
