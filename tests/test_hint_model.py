"""The hint model (issue 28's learned method): zero-initialised hint inputs, simulated hints, training."""

import pytest
import torch

from dlnet.apps.cli import main
from dlnet.color.hints import patch_hints, simulate_hints
from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import save_model
from dlnet.train.data import make_split
from dlnet.model.weights import init_from

from _tiny_model import tiny_model
from conftest import write_photo_folder


def _hint_copy(model: DLNet, tmp_path) -> DLNet:
    """A hint model initialised from ``model`` the way ``dlnet train --init ... --hints`` does."""
    src = save_model(model, tmp_path / "src.safetensors")
    hinted = DLNet(ModelConfig.from_dict({**model.config.to_dict(), "hints": True})).eval()
    loaded, total, _ = init_from(hinted, str(src))
    assert loaded == total  # the widened stem is copied too, not left random
    return hinted


def test_a_hint_model_made_from_a_trained_one_computes_exactly_what_it_did(tmp_path):
    model = tiny_model()
    hinted = _hint_copy(model, tmp_path)
    l = torch.rand(2, 1, 40, 56) * 100
    hints = torch.zeros(2, 3, 40, 56)
    hints[:, 0, 5:9, 7:11], hints[:, 1, 5:9, 7:11], hints[:, 2, 5:9, 7:11] = 60.0, -30.0, 1.0
    with torch.no_grad():
        want = model(l)
        assert torch.equal(hinted(l), want)  # no hints: an all-zero map
        assert torch.equal(hinted(l, hints=hints), want)  # the hint weights start at zero
    stem = hinted.encoder.trunk.conv_stem.weight
    assert stem.shape[1] == 4 and not stem[:, 1:].any()


def test_hints_are_refused_by_a_model_without_hint_inputs_and_checked_for_shape():
    model = tiny_model()
    with pytest.raises(ValueError, match="takes no hints"):
        model(torch.zeros(1, 1, 32, 32), hints=torch.zeros(1, 3, 32, 32))
    hinted = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder_channels=(32, 32, 16, 16, 16, 8, 8), hints=True))
    with pytest.raises(ValueError, match="hints must be"):
        hinted(torch.zeros(1, 1, 32, 32), hints=torch.zeros(1, 3, 16, 16))


def test_the_hints_flag_is_saved_only_when_set():
    assert "hints" not in ModelConfig().to_dict()  # model files written before hints read the same
    assert ModelConfig.from_dict(ModelConfig(hints=True).to_dict()).hints is True


def test_patch_hints_fill_each_patch_with_its_mean_truth_and_average_overlaps():
    ab = torch.zeros(1, 2, 6, 6)
    ab[0, 0] = torch.arange(36.0).view(6, 6)  # a* = 6 y + x
    ys, xs, sides = torch.tensor([[0, 1]]), torch.tensor([[0, 1]]), torch.tensor([[2, 2]])
    m = patch_hints(ab, torch.tensor([2]), ys, xs, sides)
    # patch 1: pixels (0,0),(0,1),(1,0),(1,1) -> mean 3.5; patch 2: (1..2, 1..2) -> mean 10.5
    assert m[0, 0, 0, 0] == 3.5 and m[0, 0, 2, 2] == 10.5
    assert m[0, 0, 1, 1] == 7.0  # both patches: their mean
    assert m[0, 2].sum() == 7 and m[0, 1].abs().sum() == 0
    none = patch_hints(ab, torch.tensor([0]), ys, xs, sides)
    assert not none.any()  # count 0: points beyond a photo's count are dropped


def test_simulated_hints_cover_every_count_and_leave_some_photos_without():
    g = torch.Generator().manual_seed(0)
    ab = torch.randn(400, 2, 32, 32)
    hints = simulate_hints(ab, g, p_none=0.5, max_points=128)
    hinted = hints[:, 2].flatten(1).any(1)
    assert 0.4 < hinted.float().mean() < 0.6
    fixed = simulate_hints(ab[:4], g, points=10, side=3)
    assert (fixed[:, 2].flatten(1).sum(1) <= 90).all() and (fixed[:, 2].flatten(1).sum(1) >= 9).all()


def test_train_a_hint_model_from_an_automatic_one_end_to_end(tmp_path):
    write_photo_folder(tmp_path / "photos", categories=2, per_category=8, size=40)
    src = save_model(tiny_model(), tmp_path / "src.safetensors")
    out = tmp_path / "run"
    code = main(["train", "--data", str(tmp_path / "photos"), "--init", str(src), "--hints",
                 "--encoder", "efficientnet_lite0", "--size", "32", "--batch-size", "4", "--workers", "0",
                 "--max-steps", "2", "--val-every-steps", "2", "--limit-val-batches", "1", "--loss", "global",
                 "--out", str(out)])
    assert code == 0
    from dlnet.model.weights import load_model

    model = load_model(out / "checkpoints" / "last.ckpt")
    assert model.config.hints and model.encoder.trunk.conv_stem.weight.shape[1] == 4
    metrics = next(out.glob("logs/*/metrics.csv")).read_text()
    assert "val/psnr_hints10" in metrics.splitlines()[0]


def test_a_hint_models_input_conv_learns_at_the_decoders_rate():
    from dlnet.train.training import ColorizationModule, TrainConfig

    cfg = ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8), hints=True)
    module = ColorizationModule(cfg, TrainConfig(loss="global", lr=1e-3, encoder_lr_scale=0.1))
    enc, dec = module.configure_optimizers().param_groups
    stem = module.model.encoder.input_conv().weight
    assert stem.shape[1] == 4 and any(p is stem for p in dec["params"]) and not any(p is stem for p in enc["params"])
    assert (enc["lr"], dec["lr"]) == (1e-4, 1e-3)
    assert len(enc["params"]) + len(dec["params"]) == len(list(module.model.parameters()))


# --- hints at the skip connections (hint_skips) ---------------------------------------------------

def test_pool_hints_keeps_a_point_at_full_strength_at_every_scale():
    from dlnet.model.net import pool_hints

    h = torch.zeros(1, 3, 8, 8)
    h[0, :, 1, 2] = torch.tensor([0.4, -0.2, 1.0])  # one hinted pixel
    h[0, :, 1, 3] = torch.tensor([0.2, 0.0, 1.0])  # and its neighbour, another colour
    p = pool_hints(h, 4)  # both fall in cell (0, 0): its mask 1, its a*b* their mean
    assert p.shape == (1, 3, 2, 2)
    torch.testing.assert_close(p[0, :, 0, 0], torch.tensor([0.3, -0.1, 1.0]))
    assert p[0, :, 1].abs().sum() == 0 and p[0, :, 0, 1].abs().sum() == 0  # cells without hints: zero
    assert torch.equal(pool_hints(h, 1), h)


def test_hint_skips_start_at_zero_learn_at_the_decoders_rate_and_round_trip(tmp_path):
    from dlnet.infer.export import export_onnx
    from dlnet.infer.onnxrun import check_onnx
    from dlnet.model.weights import load_model
    from dlnet.train.training import ColorizationModule, TrainConfig

    base = _hint_copy(tiny_model(), tmp_path)  # an input-only hint model, as trained before
    cfg = ModelConfig.from_dict({**base.config.to_dict(), "decoder": "unet", "decoder_channels": (16, 16, 8, 8)})
    unet = DLNet(cfg).eval()
    skips = DLNet(ModelConfig.from_dict({**cfg.to_dict(), "hint_skips": True})).eval()
    loaded, total, _ = init_from(skips, str(save_model(unet, tmp_path / "unet.safetensors")))
    assert total - loaded == 10  # five 1x1 convs (weight, bias) are new
    l = torch.rand(2, 1, 40, 56) * 100
    hints = simulate_hints(torch.randn(2, 2, 40, 56) * 30, torch.Generator().manual_seed(0), points=10, side=3)
    with torch.no_grad():
        assert torch.equal(skips(l, hints=hints), unet(l, hints=hints))  # zero: the same model at first
    module = ColorizationModule(skips.config, TrainConfig(loss="global", lr=1e-3, encoder_lr_scale=0.1))
    enc, dec = module.configure_optimizers().param_groups
    assert all(any(p is q for q in dec["params"]) for p in module.model.hint_convs.parameters())
    assert len(enc["params"]) + len(dec["params"]) == len(list(module.model.parameters()))
    with torch.no_grad():  # as if trained: hints now change the colour, in PyTorch and ONNX alike
        for conv in skips.hint_convs:
            conv.weight.normal_(std=0.5)
        assert (skips(l, hints=hints) - unet(l, hints=hints)).abs().max() > 1
    path = save_model(skips, tmp_path / "skips.safetensors")
    again = load_model(path)
    assert again.config.hint_skips and "hint_skips" not in unet.config.to_dict()
    assert check_onnx(export_onnx(again, tmp_path / "skips.onnx"), again) < 1e-3


def test_hint_skips_need_a_hint_unet(tmp_path):
    from dlnet.infer.options import OptionError
    from dlnet.train.config import TrainConfig

    with pytest.raises(ValueError, match="hint_skips needs hints=True and a decoder with skip connections"):
        DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="plain", hints=True, hint_skips=True))
    with pytest.raises(OptionError, match="hint_skips"):
        TrainConfig(data=[str(tmp_path)], hints=False, hint_skips=True, decoder="unet").validate()


def test_train_with_hint_skips_from_an_input_only_hint_model_end_to_end(tmp_path):
    from dlnet.model.weights import load_model

    write_photo_folder(tmp_path / "photos", categories=2, per_category=8, size=40)
    base = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8), hints=True))
    src = save_model(base.eval(), tmp_path / "src.safetensors")
    out = tmp_path / "run"
    code = main(["train", "--data", str(tmp_path / "photos"), "--init", str(src), "--hints", "--hint-skips",
                 "--encoder", "efficientnet_lite0", "--decoder", "unet", "--size", "32", "--batch-size", "4",
                 "--workers", "0", "--max-steps", "2", "--val-every-steps", "2", "--limit-val-batches", "1",
                 "--loss", "global", "--out", str(out)])
    assert code == 0
    model = load_model(out / "checkpoints" / "last.ckpt")
    assert model.config.hint_skips and len(model.hint_convs) == 5
    assert any(conv.weight.abs().sum() > 0 for conv in model.hint_convs)  # trained away from zero
