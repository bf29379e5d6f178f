"""The torch-free inference path: NumPy resizes as PyTorch's, onnxruntime photos as the PyTorch
fp32 path's (plain and U-Net decoders), the per-user ONNX cache, and ``dlnet colorize`` choosing
it without importing torch."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime")

from _tiny_model import tiny_model  # noqa: E402
from conftest import gradient_photo  # noqa: E402

from dlnet.infer.colorizer import Colorizer  # noqa: E402
from dlnet.color.fullres import merge_rgb8, resize_l  # noqa: E402
from dlnet.model.net import DLNet, ModelConfig  # noqa: E402
from dlnet.infer.onnxrun import OnnxColorizer, cache_key, cached_onnx  # noqa: E402
from dlnet.infer.options import InferenceOptions  # noqa: E402
from dlnet.model.weights import save_model  # noqa: E402


@pytest.mark.parametrize("src, dst", [((864, 1152), (192, 256)), ((50, 60), (64, 64)), ((100, 37), (64, 32))])
def test_resize_l_is_pytorchs_antialiased_bicubic(src, dst):
    l = (np.random.default_rng(0).random(src) * 100).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(l)[None, None], size=dst, mode="bicubic", align_corners=False,
                        antialias=True)[0, 0].clamp(0, 100).numpy()
    small = resize_l(l, dst)
    assert np.abs(small - ref).max() < 1e-3 and small.min() >= 0 and small.max() <= 100


def test_merge_takes_arrays_and_tensors_alike():
    l = np.random.default_rng(1).random((70, 90)).astype(np.float32) * 100
    ab = torch.randn(2, 32, 32) * 30
    assert np.array_equal(merge_rgb8(l, ab), merge_rgb8(l, ab.numpy()))


def _unet():
    torch.manual_seed(0)
    return DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8))).eval()


@pytest.mark.parametrize("make", [tiny_model, _unet], ids=["plain", "unet"])
def test_onnx_photos_match_pytorch_fp32_within_one_level(make, tmp_path):
    model_file = save_model(make(), tmp_path / "m.safetensors")
    torch_colorizer = Colorizer.from_pretrained(str(model_file), "cpu", precision="fp32")
    onnx_colorizer = OnnxColorizer.from_pretrained(model_file)
    photos = [gradient_photo(90, 130, seed=1), gradient_photo(300, 200, seed=2), gradient_photo(40, 40, seed=3)]
    for options in (InferenceOptions(), InferenceOptions(size=64), InferenceOptions(size=None)):
        for photo in photos:
            a = np.asarray(torch_colorizer.colorize(photo, options), dtype=int)
            b = np.asarray(onnx_colorizer.colorize(photo, options), dtype=int)
            assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_the_cache_exports_once_and_is_keyed_by_the_weights(tmp_path):
    first = save_model(tiny_model(seed=0), tmp_path / "a.safetensors")
    second = save_model(tiny_model(seed=1), tmp_path / "b.safetensors")
    path = cached_onnx(first)
    stamp = path.stat().st_mtime_ns
    assert cached_onnx(first) == path and path.stat().st_mtime_ns == stamp  # not exported again
    assert cache_key(second) != cache_key(first)


def test_colorize_command_runs_without_torch_for_a_few_photos(tmp_path):
    from PIL import Image

    model_file = save_model(tiny_model(), tmp_path / "m.safetensors")
    Image.fromarray(gradient_photo(80, 120)).save(tmp_path / "a.jpg")
    cached_onnx(model_file)  # the export needs torch; runs after it do not
    code = ("import sys; from dlnet.apps.cli import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "colorize", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"),
                          "--model", str(model_file)], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert out.stdout.split()[-1] == "False", out.stdout
    assert (tmp_path / "out" / "a.jpg").is_file()
