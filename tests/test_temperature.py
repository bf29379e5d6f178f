"""The annealed-mean temperature of a classification model as an inference option: per call in
PyTorch, fixed in an ONNX export (``dlnet export --temperature``), refused there if it differs,
ignored by regression models; checked in the options, the command line and the server."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny_model import tiny_model
from conftest import gradient_photo

from dlnet.apps.cli import main
from dlnet.color.abbins import annealed_mean
from dlnet.infer.colorizer import Colorizer
from dlnet.infer.options import InferenceOptions, OptionError
from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import save_model


def _classifier(temperature: float = 0.38) -> DLNet:
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8),
                              head="classification")).eval()
    model.temperature = temperature
    return model


@pytest.mark.parametrize("bad", [0, 0.001, 1.5, -1, True, "hot"])
def test_the_option_is_checked(bad):
    with pytest.raises(OptionError, match="temperature must be a number in 0.01..1"):
        InferenceOptions(temperature=bad)
    assert InferenceOptions(temperature=0.5).temperature == 0.5


def test_forward_takes_a_temperature_for_one_call_and_keeps_the_models_own():
    model = _classifier()
    l = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        logits = model.forward_logits(l)
        hot = model(l, temperature=1.0)
        torch.testing.assert_close(model.logits_to_ab(logits, 1.0), hot)
        torch.testing.assert_close(hot[..., ::2, ::2], annealed_mean(logits, model.bins, 1.0), atol=5.0, rtol=0)
        assert model.temperature == 0.38  # unchanged by the call
        torch.testing.assert_close(model(l), model(l, temperature=0.38))


def test_the_colorizer_applies_it_per_call():
    model = _classifier()
    colorizer = Colorizer(model, "cpu", precision="fp32")
    l = torch.rand(2, 1, 64, 64) * 100
    own = colorizer.colorize_lab(l)
    torch.testing.assert_close(own, colorizer.colorize_lab(l, InferenceOptions(temperature=0.38)))
    for t in (1.0, 0.05):
        other = colorizer.colorize_lab(l, InferenceOptions(temperature=t))
        assert (other - own).abs().max() > 0.05  # a random head is near uniform: small but real
        with torch.no_grad():
            torch.testing.assert_close(colorizer.predict_ab(l, t), model(l, temperature=t), atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(own, colorizer.colorize_lab(l))  # the option did not stick


def test_a_regression_model_ignores_it():
    colorizer = Colorizer(tiny_model(), "cpu", precision="fp32")
    l = torch.rand(1, 1, 64, 64) * 100
    torch.testing.assert_close(colorizer.colorize_lab(l), colorizer.colorize_lab(l, InferenceOptions(temperature=0.1)))


def test_onnx_fixes_it_at_export_and_refuses_another(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from dlnet.infer.onnxrun import OnnxColorizer

    model_file = save_model(_classifier(), tmp_path / "c.safetensors")
    assert main(["export", "--model", str(model_file), "-o", str(tmp_path / "c.onnx"), "--temperature", "0.2"]) == 0
    onnx = OnnxColorizer(tmp_path / "c.onnx")
    assert onnx.config["temperature"] == pytest.approx(0.2)
    onnx.check_options(InferenceOptions(temperature=0.2))
    onnx.check_options(InferenceOptions())
    with pytest.raises(OptionError, match="fixed at 0.2 in an ONNX model"):
        onnx.check_options(InferenceOptions(temperature=0.5))
    # The exported graph decodes at 0.2: as PyTorch does when asked for 0.2.
    photo = gradient_photo(64, 64, seed=3)
    torch_colorizer = Colorizer.from_pretrained(str(model_file), "cpu", precision="fp32")
    a = np.asarray(torch_colorizer.colorize(photo, InferenceOptions(temperature=0.2)), dtype=int)
    b = np.asarray(onnx.colorize(photo), dtype=int)
    assert np.abs(a - b).max() <= 2
    capsys.readouterr()

    # Regression models have no temperature to fix; out of range is a usage error too.
    regression = save_model(tiny_model(), tmp_path / "r.safetensors")
    assert main(["export", "--model", str(regression), "-o", str(tmp_path / "r.onnx"), "--temperature", "0.2"]) == 2
    assert "applies to classification models" in capsys.readouterr().err
    assert main(["export", "--model", str(model_file), "-o", str(tmp_path / "d.onnx"), "--temperature", "3"]) == 2
    assert "--temperature must be a number in 0.01..1" in capsys.readouterr().err
    assert not (tmp_path / "d.onnx").exists()

    # The torch Colorizer running the exported graph (videos on onnxruntime) refuses it the same way.
    wrapped = Colorizer(onnx, "cpu", precision="fp32")
    with pytest.raises(OptionError, match="fixed at 0.2 in an ONNX model"):
        wrapped.check_options(InferenceOptions(temperature=0.5))
    with pytest.raises(OptionError, match="fixed at 0.2 in an ONNX model"):
        wrapped.colorize(photo, InferenceOptions(temperature=0.5))
    assert np.abs(np.asarray(wrapped.colorize(photo, InferenceOptions(temperature=0.2)), dtype=int) - b).max() <= 1


def test_command_line_and_server_take_it(tmp_path, monkeypatch, capsys):
    from fastapi.testclient import TestClient

    from dlnet.apps.serve import ServeSettings, create_app

    weights = str(save_model(_classifier(), tmp_path / "c.safetensors"))
    monkeypatch.chdir(tmp_path)
    Image.fromarray(gradient_photo(48, 64, seed=2)).save("photo.png")
    # A few photos would go to ONNX; a temperature keeps them in PyTorch, which honours it.
    assert main(["colorize", "photo.png", "--model", weights, "-o", "t1", "--temperature", "1", "--size", "64"]) == 0
    assert main(["colorize", "photo.png", "--model", weights, "-o", "t0", "--temperature", "0.05", "--size", "64"]) == 0
    assert not np.array_equal(np.asarray(Image.open("t1/photo.png")), np.asarray(Image.open("t0/photo.png")))
    capsys.readouterr()
    assert main(["colorize", "photo.png", "--model", weights, "-o", "x", "--temperature", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--temperature must be a number in 0.01..1" in err and "\n" not in err
    assert main(["colorize", "photo.png", "--model", weights, "-o", "y", "--runtime", "onnx", "--temperature", "0.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "fixed at 0.38 in an ONNX model" in err and "\n" not in err and not (tmp_path / "y").exists()

    client = TestClient(create_app(Colorizer.from_pretrained(weights, device="cpu", precision="fp32"),
                                   ServeSettings(default_size=64)), raise_server_exceptions=False)
    files = {"file": ("photo.png", open("photo.png", "rb").read(), "image/png")}
    assert client.post("/v1/colorize", data={"temperature": "0"}, files=files).status_code == 422
    ok = client.post("/v1/colorize", data={"temperature": "1"}, files=files)
    assert ok.status_code == 200 and Image.open(io.BytesIO(ok.content)).size == (64, 48)


def test_a_server_on_onnx_answers_422_for_another_temperature(tmp_path):
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from dlnet.apps.serve import ServeSettings, create_app
    from dlnet.infer.onnxrun import OnnxColorizer

    model_file = save_model(_classifier(), tmp_path / "c.safetensors")
    assert main(["export", "--model", str(model_file), "-o", str(tmp_path / "c.onnx")]) == 0
    client = TestClient(create_app(OnnxColorizer(tmp_path / "c.onnx"), ServeSettings(default_size=64)),
                        raise_server_exceptions=False)
    buf = io.BytesIO()
    Image.fromarray(gradient_photo(48, 64, seed=2)).save(buf, "PNG")
    files = {"file": ("photo.png", buf.getvalue(), "image/png")}
    refused = client.post("/v1/colorize", data={"temperature": "0.9"}, files=files)
    assert refused.status_code == 422 and "fixed at 0.38 in an ONNX model" in refused.json()["detail"]
    assert client.post("/v1/colorize", data={"temperature": "0.38"}, files=files).status_code == 200
