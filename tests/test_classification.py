"""The classification head (Zhang et al. 2016): logits, the annealed-mean decode, the temperature,
reload, ONNX; the rebalanced and classification losses trained end to end, then colorizing."""

import json

import numpy as np
import pytest
import torch

from dlnet.color.abbins import ABPrior, annealed_mean, gamut_bins
from dlnet.apps.cli import main
from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import load_model, save_model

from _tiny_model import tiny_model
from conftest import write_photo_folder

CHANNELS = {"plain": (32, 32, 16, 16, 16, 8, 8), "unet": (16, 16, 8, 8)}
TRAIN = ["--encoder", "efficientnet_lite0", "--size", "32", "--batch-size", "4", "--max-steps", "2", "--workers", "0",
         "--val-every-steps", "2", "--limit-val-batches", "1", "--precision", "32-true"]


def _tiny(decoder: str = "unet") -> DLNet:
    torch.manual_seed(0)
    return DLNet(ModelConfig(encoder="efficientnet_lite0", decoder=decoder, decoder_channels=CHANNELS[decoder],
                             head="classification")).eval()


@pytest.mark.parametrize("decoder", ["plain", "unet"])
def test_the_head_gives_logits_and_forward_decodes_them_to_ab(decoder):
    model = _tiny(decoder)
    s = model.decoder.stride
    l = torch.rand(2, 1, 64, 96, generator=torch.Generator().manual_seed(0)) * 100
    with torch.no_grad():
        logits, ab = model.forward_logits(l), model(l)
        assert logits.shape == (2, len(gamut_bins()), 64 // s, 96 // s)
        assert ab.shape == (2, 2, 64, 96) and ab.dtype == torch.float32
        torch.testing.assert_close(ab, model.logits_to_ab(logits))
        odd = torch.rand(1, 1, 33, 50) * 100  # padded to 64 x 64 inside, cropped back
        assert model(odd).shape == (1, 2, 33, 50)
        assert model.forward_logits(odd).shape[-2:] == (-(-33 // s), -(-50 // s))
    assert model.config.bins == gamut_bins().tolist()  # the default bins, stored for the reload


def test_temperature_is_an_inference_option_of_the_model():
    model = _tiny("plain")
    l = torch.rand(1, 1, 32, 32) * 100
    with torch.no_grad():
        logits = model.forward_logits(l)
        assert model.temperature == 0.38
        torch.testing.assert_close(model(l), annealed_mean(logits, model.bins, 0.38))
        model.temperature = 1.0
        torch.testing.assert_close(model(l), annealed_mean(logits, model.bins, 1.0))
    with pytest.raises(ValueError, match="temperature"):
        model.temperature = 0
    with pytest.raises(ValueError, match="unknown head"):
        ModelConfig.from_dict({"head": "nope"})
    with pytest.raises(ValueError, match="classification"):
        tiny_model().forward_logits(l)


def test_saved_and_reloaded_with_its_bins_and_temperature_and_regression_files_unchanged(tmp_path):
    from safetensors import safe_open

    model = _tiny()
    model.temperature = 0.2
    again = load_model(save_model(model, tmp_path / "c.safetensors"))
    assert again.config.head == "classification" and again.temperature == 0.2
    assert torch.equal(again.bins, model.bins)
    l = torch.rand(1, 1, 32, 64) * 100
    with torch.no_grad():
        torch.testing.assert_close(again(l), model(l))
    # a regression model's file holds the config it always did (older dlnet versions read it)
    with safe_open(str(save_model(tiny_model(), tmp_path / "r.safetensors")), framework="pt") as f:
        assert set(json.loads(f.metadata()["dlnet_config"])) == {"encoder", "decoder", "decoder_channels",
                                                                  "ab_scale", "pretrained"}


def test_onnx_export_of_a_classification_model_matches_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from dlnet.infer.export import export_onnx
    from dlnet.infer.onnxrun import PARITY_TOLERANCE, OnnxColorizer, check_onnx

    model = _tiny()
    model.temperature = 0.3
    export_onnx(model, tmp_path / "c.onnx")
    assert check_onnx(tmp_path / "c.onnx", model) <= PARITY_TOLERANCE  # over a few shapes, dynamic batch and sizes
    onnx_model = OnnxColorizer(tmp_path / "c.onnx")
    assert onnx_model.config["head"] == "classification" and onnx_model.config["temperature"] == 0.3
    l = torch.rand(2, 1, 40, 72) * 100
    with torch.no_grad():
        assert (onnx_model(l) - model(l)).abs().max() <= 1e-2


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photo_folder(root, categories=2, per_category=8, size=40)
    return root


def test_classification_trains_on_a_pack_is_saved_reloaded_and_colorizes(photos, tmp_path, capsys):
    from dlnet import Colorizer

    pack, run = tmp_path / "p.pack", tmp_path / "run"
    assert main(["pack", "--data", str(photos), "-o", str(pack), "--size", "32"]) == 0
    args = ["train", "--packed", str(pack), "--decoder", "unet", "--loss", "classification", "--prior-photos", "5",
            "--out", str(run), *TRAIN]
    assert main(args) == 0
    prior = ABPrior.load(run / "ab_prior.json")
    assert prior.photos == 5 and float((prior.smoothed * prior.weights).sum()) == pytest.approx(1.0)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["hyper_parameters"]["ab_prior"] == prior.to_dict()
    assert "a*b* prior of 5 training photos" in capsys.readouterr().err
    # resuming reads the run's prior instead of computing it again
    assert main(args + ["--max-steps", "3", "--resume"]) == 0  # the last --max-steps wins
    assert "a*b* prior" not in capsys.readouterr().err

    model = load_model(run / "checkpoints" / "last.ckpt")
    assert model.config.head == "classification" and model.config.bins == prior.bins.tolist()
    saved = load_model(save_model(model, tmp_path / "cls.safetensors", dtype=torch.float16))
    grey = np.random.default_rng(0).integers(0, 256, (30, 44), dtype=np.uint8)
    image = Colorizer(saved, "cpu", size=32, precision="fp32").colorize(grey)
    assert image.size == (44, 30) and image.mode == "RGB"


def test_rebalanced_trains_from_folders(photos, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(photos), "--loss", "rebalanced", "--out", str(run), *TRAIN]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2
    assert ABPrior.load(run / "ab_prior.json").photos == len((run / "split" / "train.txt").read_text().split())
    assert load_model(run / "checkpoints" / "last.ckpt").config.head == "regression"


def test_the_training_module_applies_the_chosen_loss():
    from dlnet.color.abbins import ab_prior
    from dlnet.train.losses import classification_loss, local_loss, rebalanced_loss
    from dlnet.train.training import ColorizationModule, TrainConfig

    rgb = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    prior = ab_prior(rgb)
    regression = ModelConfig(encoder="efficientnet_lite0", decoder_channels=CHANNELS["plain"]).to_dict()
    module = ColorizationModule(regression, TrainConfig(loss="local-sqrt", clusters=3))
    l, ab = module._lab({"rgb": rgb})
    pred = torch.randn_like(ab)
    assert module._loss(pred, ab) == local_loss(pred, ab, 3, balance=0.5, seed=0)
    module = ColorizationModule(regression, TrainConfig(loss="rebalanced"), prior)
    assert module._loss(pred, ab) == rebalanced_loss(pred, ab, prior.bins, prior.weights)
    module = ColorizationModule(regression, TrainConfig(loss="rebalanced", global_weight=2.0), prior)
    # a softer rebalancing: each pixel weighs w(bin) + 2
    assert torch.allclose(module._loss(pred, ab), rebalanced_loss(pred, ab, prior.bins, prior.weights + 2.0))
    head = _tiny("plain").config.to_dict()
    module = ColorizationModule(head, TrainConfig(loss="classification"), prior)
    logits = module._output(l)
    assert logits.shape == (2, len(prior.bins), 32, 32)
    assert module._loss(logits, ab) == classification_loss(logits, ab, prior.bins, prior.weights)
    with pytest.raises(ValueError, match="prior"):
        ColorizationModule(regression, TrainConfig(loss="rebalanced"))
    with pytest.raises(ValueError, match="go together"):
        ColorizationModule(regression, TrainConfig(loss="classification"), prior.to_dict())
