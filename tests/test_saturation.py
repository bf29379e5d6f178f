"""The a*b* gain (``saturation``): a model setting saved in its file and recorded in its ONNX export,
applied once by the inference path (the model's own or the option overriding it) in every runtime,
the command line and the server."""

import numpy as np
import pytest
import torch

from _tiny_model import tiny_model
from conftest import gradient_photo

from dlnet.color.lab import lab_to_rgb
from dlnet.infer.colorizer import Colorizer
from dlnet.infer.options import InferenceOptions, OptionError
from dlnet.model.net import ModelConfig
from dlnet.model.weights import load_model, save_model


def _chroma(image) -> float:
    """Mean a*b* magnitude of an 8-bit PIL image."""
    from dlnet.color.lab import rgb_to_lab

    rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return float(rgb_to_lab(rgb)[:, 1:].norm(dim=1).mean())


def test_the_model_multiplies_its_output_and_keeps_the_gain_in_its_file(tmp_path):
    model = tiny_model()
    l = torch.rand(2, 1, 64, 64) * 100
    with torch.no_grad():
        plain = model(l)
        model.saturation = 1.5
        assert torch.allclose(model(l), plain * 1.5, atol=1e-5)
    loaded = load_model(save_model(model, tmp_path / "m.safetensors"))
    assert loaded.saturation == 1.5 and loaded.config.to_dict()["saturation"] == 1.5
    with torch.no_grad():
        assert torch.allclose(loaded(l), plain * 1.5, atol=1e-4)


def test_a_gain_of_one_is_saved_as_before_it_existed():
    assert "saturation" not in ModelConfig(encoder="efficientnet_lite0").to_dict()
    assert ModelConfig.from_dict(ModelConfig().to_dict()).saturation == 1.0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_a_model_refuses_a_bad_gain(bad):
    with pytest.raises(ValueError, match="saturation"):
        tiny_model().saturation = bad


@pytest.mark.parametrize("bad", [-1, 4.5, True, "1.2", float("nan")])
def test_the_option_is_checked(bad):
    with pytest.raises(OptionError, match="saturation"):
        InferenceOptions(saturation=bad)


def test_the_option_replaces_the_models_own_gain():
    model = tiny_model()
    model.saturation = 2.0
    colorizer = Colorizer(model, "cpu", precision="fp32")
    l = torch.rand(1, 1, 64, 64) * 100
    own = colorizer.colorize_lab(l)  # the model's 2.0
    as_trained = colorizer.colorize_lab(l, InferenceOptions(saturation=1.0))
    grey = colorizer.colorize_lab(l, InferenceOptions(saturation=0))
    assert torch.allclose(own, as_trained * 2, atol=1e-4)
    assert grey.abs().max() == 0


def test_more_saturation_gives_more_chroma_in_the_photo():
    photo = gradient_photo(80, 120, seed=4)
    colorizer = Colorizer(tiny_model(), "cpu", precision="fp32")
    low, high = (colorizer.colorize(photo, InferenceOptions(saturation=s)) for s in (0.5, 2.0))
    assert _chroma(high) > 2 * _chroma(low)
    assert _chroma(colorizer.colorize(photo, InferenceOptions(saturation=0))) < 1.5  # grey, up to rounding


def test_onnx_runtime_applies_the_models_gain_and_the_option_alike(tmp_path):
    pytest.importorskip("onnxruntime")
    from dlnet.infer.onnxrun import OnnxColorizer

    model = tiny_model()
    model.saturation = 1.7
    model_file = save_model(model, tmp_path / "m.safetensors")
    torch_colorizer = Colorizer.from_pretrained(str(model_file), "cpu", precision="fp32")
    onnx_colorizer = OnnxColorizer.from_pretrained(model_file)
    assert onnx_colorizer.model_saturation == pytest.approx(1.7)
    photo = gradient_photo(90, 130, seed=1)
    for options in (InferenceOptions(), InferenceOptions(saturation=0.6)):
        a = np.asarray(torch_colorizer.colorize(photo, options), dtype=int)
        b = np.asarray(onnx_colorizer.colorize(photo, options), dtype=int)
        assert np.abs(a - b).max() <= 1


def test_the_gain_is_applied_once_so_a_model_saved_at_gain_zero_takes_another(tmp_path):
    """Before, the model multiplied by its gain and the pipeline divided it back out: a model saved
    at gain 0 output grey and refused any other gain."""
    pytest.importorskip("onnxruntime")
    from dlnet.infer.onnxrun import OnnxColorizer

    model = tiny_model()
    model.saturation = 0.0
    weights = str(save_model(model, tmp_path / "grey.safetensors"))
    photo = gradient_photo(48, 64, seed=3)
    reference = Colorizer(tiny_model(), "cpu", precision="fp32")  # the same network at gain 1
    want = np.asarray(reference.colorize(photo, InferenceOptions(saturation=1.2)), dtype=int)
    for colorizer in (Colorizer.from_pretrained(weights, "cpu", precision="fp32"), OnnxColorizer.from_pretrained(weights)):
        assert colorizer.model_saturation == 0
        assert _chroma(colorizer.colorize(photo)) < 1.5  # its own gain: grey
        got = np.asarray(colorizer.colorize(photo, InferenceOptions(saturation=1.2)), dtype=int)
        assert np.abs(got - want).max() <= 1
    assert model.saturation == 0  # the Colorizer left the caller's model as it was


def test_lab_round_trip_helper_is_sane():
    # _chroma reads photos through the same Lab conversion the model is trained in.
    lab = torch.tensor([[[[50.0]], [[30.0]], [[-20.0]]]])
    image = (lab_to_rgb(lab)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert abs(_chroma(image) - (30**2 + 20**2) ** 0.5) < 1.5


def test_command_line_and_server_take_it(tmp_path, monkeypatch, capsys):
    from PIL import Image
    from fastapi.testclient import TestClient

    from _tiny_model import tiny_model_file
    from dlnet.apps.cli import main
    from dlnet.apps.serve import ServeSettings, create_app

    weights = str(tiny_model_file(tmp_path))
    monkeypatch.chdir(tmp_path)
    Image.fromarray(gradient_photo(48, 64, seed=2)).save("photo.png")
    assert main(["colorize", "photo.png", "--model", weights, "-o", "grey", "--saturation", "0", "--size", "64"]) == 0
    assert _chroma(Image.open("grey/photo.png").convert("RGB")) < 1.5
    assert main(["colorize", "photo.png", "--model", weights, "-o", "x", "--saturation", "9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "saturation must be a number in 0..4" in err and "\n" not in err

    client = TestClient(create_app(Colorizer.from_pretrained(weights, device="cpu", precision="fp32"),
                                   ServeSettings(default_size=64)), raise_server_exceptions=False)
    files = {"file": ("photo.png", open("photo.png", "rb").read(), "image/png")}
    assert client.post("/v1/colorize", data={"saturation": "9"}, files=files).status_code == 422
    ok = client.post("/v1/colorize", data={"saturation": "0"}, files=files)
    assert ok.status_code == 200
    import io
    assert _chroma(Image.open(io.BytesIO(ok.content)).convert("RGB")) < 1.5
