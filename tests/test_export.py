"""ONNX export: parity with PyTorch fp32, dynamic batch/height/width, the CLI, the Colorizer running an export."""

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnxruntime")

from _tiny_model import tiny_model, tiny_model_file  # noqa: E402

from dlnet.apps.cli import main  # noqa: E402
from dlnet.infer.colorizer import Colorizer  # noqa: E402
from dlnet.infer.export import export_onnx  # noqa: E402
from dlnet.infer.onnxrun import PARITY_TOLERANCE, OnnxColorizer, check_onnx  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_model()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model, path)
    return model, path, check_onnx(path, model)


def test_parity_with_pytorch_fp32(exported):
    model, path, diff = exported
    print(f"max |a*b*| difference onnxruntime vs PyTorch fp32: {diff:.2e}")
    assert diff <= PARITY_TOLERANCE


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (3, 1, 64, 96), (2, 1, 96, 64), (1, 1, 50, 77)])
def test_dynamic_batch_and_sizes(exported, shape):
    model, path, _ = exported
    l = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 100
    ab = OnnxColorizer(path)(l)
    assert ab.shape == (shape[0], 2, *shape[2:]) and ab.dtype == torch.float32
    with torch.inference_mode():
        assert (ab - model(l)).abs().max() <= PARITY_TOLERANCE


def test_colorizer_runs_the_onnx_model_like_the_torch_model(exported):
    model, path, _ = exported
    grey = np.random.default_rng(0).integers(0, 256, (45, 70), dtype=np.uint8)
    via_torch = np.asarray(Colorizer(model, "cpu", size=64, precision="fp32").colorize(grey), dtype=int)
    via_onnx = np.asarray(Colorizer(OnnxColorizer(path), "cpu", size=64, precision="fp32").colorize(grey), dtype=int)
    assert via_onnx.shape == (45, 70, 3)
    assert np.abs(via_torch - via_onnx).max() <= 1


def test_export_command(tmp_path, capsys):
    weights = tiny_model_file(tmp_path)
    out = tmp_path / "sub" / "model.onnx"
    assert main(["export", "--format", "onnx", "--weights", str(weights), "-o", str(out)]) == 0
    assert out.is_file() and "max |a*b* difference|" in capsys.readouterr().out
    assert main(["export", "--weights", str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err


def test_export_never_replaces_a_file_unasked(tmp_path, capsys):
    """`dlnet export -o photo.png` wrote the ONNX graph over the photo."""
    weights, photo = tiny_model_file(tmp_path), tmp_path / "photo.png"
    photo.write_bytes(b"the user's photo")
    assert main(["export", "--weights", str(weights), "-o", str(photo)]) == 2
    assert capsys.readouterr().err.strip() == f"dlnet export: error: {photo}: exists; pass --overwrite to replace it"
    assert photo.read_bytes() == b"the user's photo"
    assert main(["export", "--weights", str(weights), "-o", str(photo), "--overwrite", "--no-check"]) == 0
    assert photo.read_bytes()[:8] != b"the user"


def test_colorize_command_with_the_onnx_runtime(exported, tmp_path, monkeypatch, capsys):
    _, path, _ = exported
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56), dtype=np.uint8)).save("g.png")
    weights = tiny_model_file(tmp_path)
    assert main(["colorize", "g.png", "-o", "a", "--weights", str(path), "--size", "64"]) == 0
    assert main(["colorize", "g.png", "-o", "b", "--weights", str(weights), "--runtime", "onnx", "--size", "64"]) == 0
    assert Image.open("a/g.png").size == Image.open("b/g.png").size == (56, 40)
    assert main(["colorize", "g.png", "-o", "c", "--weights", str(path), "--runtime", "torch"]) == 2
    assert "an .onnx model runs on onnxruntime" in capsys.readouterr().err
