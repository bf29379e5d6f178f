"""End to end on CPU: train -> checkpoint -> resume -> evaluate -> colorize; the data split; DDP."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlnet.apps.cli import main
from dlnet.train.data import DataError, make_split

from conftest import write_photo_folder

TRAIN = ["--encoder", "efficientnet_lite0", "--size", "32", "--batch-size", "4", "--workers", "0",
         "--val-every-steps", "2", "--limit-val-batches", "1", "--loss", "local", "--clusters", "3",
         "--schedule", "cosine"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    write_photo_folder(root, categories=2, per_category=10, size=48)
    return root


def test_split_is_80_20_per_category_disjoint_and_deterministic(tmp_path):
    write_photo_folder(tmp_path, categories=3, per_category=20, size=8)
    a = make_split([tmp_path], seed=1)
    b = make_split([tmp_path], seed=1)
    c = make_split([tmp_path], seed=2)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert a.test != c.test
    assert len(a.test) == 12 and len(a.train) + len(a.val) == 48
    for cat in ("cat0", "cat1", "cat2"):
        assert sum(p.parent.name == cat for p in a.test) == 4  # 20% of each category
    assert not (set(a.train) | set(a.val)) & set(a.test) and not set(a.train) & set(a.val)


def test_plain_folder_and_extra_training_data(tmp_path):
    plain, extra = tmp_path / "plain", tmp_path / "extra"
    write_photo_folder(plain, categories=1, per_category=10, size=8)
    for f in (plain / "cat0").iterdir():
        f.rename(plain / f.name)
    write_photo_folder(extra, categories=1, per_category=5, size=8)
    s = make_split([plain], extra_train=[extra])
    assert len(s.test) == 2 and sum(p.parent.parent == extra for p in s.train) == 5
    assert all(p.parent == plain for p in s.test + s.val)


def test_missing_or_empty_data_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DataError, match="no such data folder"):
        make_split([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    assert "no images found" in capsys.readouterr().err


def test_corrupt_and_grey_photos_are_skipped(tmp_path):
    from PIL import Image

    from dlnet.train.data import PhotoDataset, collate

    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (40, 40), (90, 90, 90)).save(tmp_path / "grey.png")
    Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "red.png")
    ds = PhotoDataset(sorted(tmp_path.iterdir()), size=32, train=True)
    batch = collate([ds[i] for i in range(3)])
    assert batch["rgb"].shape == (1, 3, 32, 32)
    assert batch["skipped_bad"] == 1 and batch["skipped_grey"] == 1


def test_train_checkpoint_resume_evaluate_colorize(photos, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(photos), "--out", str(run), "--max-steps", "2", *TRAIN]) == 0
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file() and (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "config.yaml").is_file() and (run / "logs" / "version_0" / "metrics.csv").is_file()
    assert len((run / "split" / "test.txt").read_text().split()) == 4
    assert "val/psnr" in (run / "logs" / "version_0" / "metrics.csv").read_text()
    assert torch.load(last, weights_only=False)["global_step"] == 2

    assert main(["train", "--config", str(run / "config.yaml"), "--max-steps", "4", "--resume"]) == 0
    assert torch.load(last, weights_only=False)["global_step"] == 4  # continued, not restarted
    # the first part's log survives the restart
    assert (run / "logs" / "version_0" / "metrics.csv").is_file() and (run / "logs" / "version_1" / "metrics.csv").is_file()

    report = tmp_path / "report"
    assert main(["evaluate", "--data", str(run / "split" / "test.txt"), "--checkpoint", f"tiny={last}",
                 "--out", str(report), "--size", "32"]) == 0
    text = (report / "report.md").read_text()
    assert "grey" in text.lower() and "tiny" in text
    assert (report / "per_image.csv").is_file() and (report / "grid.png").is_file()

    from dlnet import Colorizer

    img = Colorizer.from_pretrained(str(last), device="cpu").colorize(str(sorted(photos.rglob("*.jpg"))[0]))
    assert img.size == (48, 48) and img.mode == "RGB"


def test_a_cosine_ends_with_the_clock_when_max_time_stops_the_run(photos, tmp_path):
    # 1,000 epochs would take the cosine ~3,000 steps; --max-time stops the run after a few seconds,
    # and the rate must have followed the clock down (a GPU call's model comes home cooled).
    run = tmp_path / "run"
    args = ["--data", str(photos), "--out", str(run), "--epochs", "1000", "--max-time", "00:00:00:04"]
    assert main(["train", *args, *TRAIN, "--lr", "1e-3"]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    lrs = [g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]]
    assert 0 < ckpt["global_step"] < 500 and max(lrs) < 0.25e-3, (ckpt["global_step"], lrs)


@pytest.mark.slow
def test_ddp_two_cpu_processes(photos, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "dlnet.apps.cli", "train", "--data", str(photos), "--out", str(run), "--max-steps", "2",
           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--precision", "32-true", *TRAIN]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["best.ckpt", "last.ckpt"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2


def test_depthwise_convolutions_train_in_float32_on_a_cpu():
    from torch import nn

    from dlnet import DLNet, ModelConfig
    from dlnet.train.precision import Float32DepthwiseConv2d, depthwise_in_float32
    from dlnet.train.training import ColorizationModule, TrainConfig

    plain = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet"))
    model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet"))
    model.load_state_dict(plain.state_dict())
    keys = list(model.state_dict())
    assert depthwise_in_float32(model) == 16 and list(model.state_dict()) == keys  # checkpoints unchanged
    dw = [m for m in model.modules() if isinstance(m, Float32DepthwiseConv2d)]
    assert all(m.groups == m.in_channels == m.out_channels > 1 for m in dw)
    assert not any(type(m) is nn.Conv2d and m.groups > 1 for m in model.modules())
    seen = []
    dw[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    l = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 100
    model.eval(), plain.eval()
    with torch.no_grad():
        want = plain(l)
        assert torch.equal(model(l), want)  # without autocast it is the plain convolution
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(l).float()
    assert seen == [torch.float32, torch.float32]  # under autocast too; the rest in bf16 as before
    assert (got - want).abs().mean() < 0.01 * want.abs().mean()  # bf16 rounding only
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.train()(l).float().pow(2).mean().backward()
    assert all(m.weight.grad is not None and m.weight.grad.dtype == torch.float32 for m in dw)
    module = ColorizationModule(ModelConfig(encoder="efficientnet_lite0", decoder="unet"), TrainConfig(loss="global"))
    assert sum(isinstance(m, Float32DepthwiseConv2d) for m in module.modules()) == 16


def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_natively(monkeypatch):
    from dlnet.train.training import TrainConfig, _precision

    cfg = TrainConfig(data=["x"], accelerator="cpu")  # the default: precision "auto"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert _precision(cfg) == "32-true"  # emulated bf16 was ~10x slower on an AVX2 EPYC
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AMX")
    assert _precision(cfg) == "bf16-mixed"
    assert _precision(TrainConfig(data=["x"], precision="32-true")) == "32-true"  # asked for: kept
