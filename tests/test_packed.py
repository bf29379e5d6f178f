"""Packed training photos: the pack, the decoded cache, device-side augmentation, training on it."""

import numpy as np
import pytest
import torch
from PIL import Image

from dlnet.apps.cli import main
from dlnet.train.data import make_split
from dlnet.io.imageio import read_rgb8, resize_crop
from dlnet.train.packed import augment, load_packed, pack_names, pack_photos
from dlnet.model.weights import init_from
from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import images_seen, save_model

from conftest import write_photo_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photo_folder(root, categories=2, per_category=10, size=40)
    Image.new("RGB", (40, 40), (90, 90, 90)).save(root / "cat0" / "grey.jpg")  # never packed
    (root / "cat1" / "broken.jpg").write_bytes(b"not a jpeg")  # skipped with a warning
    return root


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_pack_holds_train_and_val_never_test(folder, tmp_path, fmt, capsys):
    split = make_split([folder], seed=0)
    summary = pack_photos(split, tmp_path / "p.pack", size=32, quality=90, fmt=fmt)
    assert summary["train"] + summary["val"] + summary["train_skipped"] + summary["val_skipped"] == \
        len(split.train) + len(split.val)
    assert summary["train_skipped"] + summary["val_skipped"] == sum(
        p.name in ("grey.jpg", "broken.jpg") for p in split.train + split.val)
    packed = set(pack_names(tmp_path / "p.pack", "train")) | set(pack_names(tmp_path / "p.pack", "val"))
    assert len(packed) == summary["train"] + summary["val"]
    assert not packed & {str(p) for p in split.test}
    assert pack_names(tmp_path / "p.pack", "test") == [str(p) for p in split.test]
    photos = load_packed(tmp_path / "p.pack")
    assert photos["train"].shape == (summary["train"], 3, 32, 32) and photos["train"].dtype == torch.uint8
    # the decoded photos are the photos, resized and centre-cropped (lossy codec: close, not equal)
    first = pack_names(tmp_path / "p.pack", "train")[0]
    expected = torch.from_numpy(resize_crop(read_rgb8(first), 32).copy()).permute(2, 0, 1)
    assert (photos["train"][0].float() - expected.float()).abs().mean() < 4


def test_decoded_cache_is_made_once_and_remade_when_the_pack_changes(folder, tmp_path):
    split = make_split([folder], seed=0)
    pack_photos(split, tmp_path / "p.pack", size=32)
    a = load_packed(tmp_path / "p.pack")["train"].clone()
    cache = tmp_path / "p.pack.u8"
    mtime = cache.stat().st_mtime_ns
    assert torch.equal(load_packed(tmp_path / "p.pack")["train"], a) and cache.stat().st_mtime_ns == mtime
    pack_photos(split, tmp_path / "p.pack", size=32, limit=3)
    assert len(load_packed(tmp_path / "p.pack")["train"]) == 3


def test_a_size_budget_shortens_only_the_training_photos(folder, tmp_path):
    split = make_split([folder], seed=0)
    full = pack_photos(split, tmp_path / "full.pack", size=128, fmt="webp")
    budget = full["bytes"] * 3 // 4
    part = pack_photos(split, tmp_path / "part.pack", size=128, fmt="webp", max_bytes=budget)
    assert part["bytes"] <= budget and part["val"] == full["val"]
    assert 0 < part["train"] < full["train"] and part["over_budget"] > 0


def test_augment_full_crop_is_the_photo_or_its_mirror():
    photos = torch.randint(0, 256, (16, 3, 24, 24), dtype=torch.uint8)
    out = augment(photos, 24, torch.Generator().manual_seed(0), min_scale=1.0)
    same = (out == photos).flatten(1).all(1)
    mirrored = (out == photos.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 16


def test_augment_crops_and_resizes():
    photos = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    photos[..., :16] = 200  # left half bright
    out = augment(photos, 48, torch.Generator().manual_seed(1), min_scale=0.25)
    assert out.shape == (4, 3, 48, 48) and out.dtype == torch.uint8
    assert bool(((out == 0) | (out == 200) | True).all())
    assert len({float(o.float().mean()) for o in out}) > 1  # different crops per photo


def test_init_copies_what_fits(tmp_path):
    torch.manual_seed(0)
    plain = DLNet(ModelConfig(encoder="efficientnet_lite0"))
    path = save_model(plain, tmp_path / "plain.safetensors", extra={"images_seen": 123})
    unet = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet"))
    copied, total, seen = init_from(unet, str(path))
    assert seen == 123 and copied == len(plain.encoder.state_dict()) < total
    assert torch.equal(unet.encoder.trunk.conv_stem.weight, plain.encoder.trunk.conv_stem.weight)
    with pytest.raises(ValueError, match="no encoder tensor fits"):
        init_from(DLNet(ModelConfig(encoder="densenet121")), str(path))


def test_train_on_a_pack_from_init_counts_images(folder, tmp_path, capsys):
    pack = tmp_path / "p.pack"
    assert main(["pack", "--data", str(folder), "-o", str(pack), "--size", "32"]) == 0
    assert (tmp_path / "p.pack.split" / "test.txt").is_file()
    assert main(["pack", "--data", str(folder), "-o", str(pack)]) == 2  # never overwritten
    assert "exists" in capsys.readouterr().err
    torch.manual_seed(0)
    init = save_model(DLNet(ModelConfig(encoder="efficientnet_lite0")), tmp_path / "init.safetensors",
                      extra={"images_seen": 1000})
    run = tmp_path / "run"
    args = ["train", "--packed", str(pack), "--init", str(init), "--encoder", "efficientnet_lite0",
            "--decoder", "unet", "--size", "32", "--batch-size", "4", "--max-steps", "2",
            "--val-every-steps", "2", "--limit-val-batches", "1", "--loss", "local", "--clusters", "3",
            "--global-weight", "1", "--encoder-lr-scale", "0.1", "--warmup-steps", "1", "--out", str(run)]
    assert main(args) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["images_seen"] == 1000 + 2 * 4
    assert images_seen(run / "checkpoints" / "last.ckpt") == 1008
    assert [g["lr"] for g in ckpt["optimizer_states"][0]["param_groups"]] == pytest.approx([1e-4, 1e-3])
    assert "images/s" in capsys.readouterr().err
    # resume continues the count
    assert main(args[:-2] + ["--max-steps", "3", "--out", str(run), "--resume"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["images_seen"] == 1012


def test_packed_and_data_together_is_a_usage_error(folder, tmp_path, capsys):
    assert main(["train", "--packed", "x.pack", "--data", str(folder), "--out", str(tmp_path / "r")]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["train", "--packed", str(tmp_path / "none.pack"), "--out", str(tmp_path / "r")]) == 2
    assert "no such pack file" in capsys.readouterr().err


@pytest.mark.parametrize("start", ["file", "imagenet"])
def test_gpu_training_script_runs_on_the_cpu_at_tiny_size(folder, tmp_path, start):
    """experiments/train_gpu.sh as the device runs it (dlnet from src/ on PYTHONPATH), on the CPU:
    what comes back is a loadable fp16 U-Net model, the log with images/s, the CSV and the config,
    within the device's limits (at most 8 files of 16 MiB); from a model file or (a new lineage)
    from the encoder's ImageNet weights."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dlnet.model.weights import load_model

    pack, out = tmp_path / "p.pack", tmp_path / "out"
    assert main(["pack", "--data", str(folder), "-o", str(pack), "--size", "32", "--format", "webp"]) == 0
    torch.manual_seed(0)
    init = save_model(DLNet(ModelConfig(encoder="efficientnet_lite0")), tmp_path / "init.safetensors",
                      extra={"images_seen": 50})
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PACK=str(pack), INIT=str(init) if start == "file" else "imagenet",
               MAX_TIME="00:00:00:06", BATCH="4", OUT=str(out), PYTHON=sys.executable, EXTRA="--limit-val-batches 1")
    r = subprocess.run(["bash", str(root / "experiments" / "train_gpu.sh")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "images/s" in r.stdout
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8 and all((out / f).stat().st_size < 16 * 2**20 for f in files)
    assert {"config.yaml", "metrics.csv", "train.log"} <= set(files)
    model_file = next(out.glob("gpu-*.safetensors"))
    assert load_model(model_file).config.decoder == "unet"
    assert images_seen(model_file) > (50 if start == "file" else 0)
    assert ("pretrained: true" in (out / "config.yaml").read_text()) == (start == "imagenet")


def _sigterm() -> None:
    """Send this process a real SIGTERM, as a job scheduler or `kill -TERM` would; Lightning ends the run after the step."""
    import os
    import signal

    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "Lightning's handler is not installed"
    os.kill(os.getpid(), signal.SIGTERM)


def _stopped_at_step_3(folder, tmp_path, monkeypatch, stop):
    """Train 10 steps but call ``stop()`` inside step 3; the SystemExit code and the run folder."""
    from dlnet.train.training import ColorizationModule

    pack = tmp_path / "p.pack"
    pack_photos(make_split([folder], seed=0), pack, size=32)
    step = ColorizationModule.training_step

    def stopped_at_step_3(self, batch, batch_idx):
        if self.global_step == 3:
            stop()
        return step(self, batch, batch_idx)

    monkeypatch.setattr(ColorizationModule, "training_step", stopped_at_step_3)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--packed", str(pack), "--encoder", "efficientnet_lite0", "--size", "32",
              "--batch-size", "2", "--max-steps", "10", "--limit-val-batches", "1", "--out", str(run)])
    return exit_.value.code, run


def test_an_interrupted_run_keeps_what_it_trained(folder, tmp_path, monkeypatch, capsys):
    """Ctrl-C mid-run (Lightning ends it with SystemExit) still saves last.ckpt, so `--resume`
    loses nothing, and exits 130 as a shell reports a process ended by SIGINT."""
    def ctrl_c():
        raise KeyboardInterrupt

    code, run = _stopped_at_step_3(folder, tmp_path, monkeypatch, ctrl_c)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert code == 130 and ckpt["global_step"] == 3 and ckpt["images_seen"] == 6
    assert "stopped (interrupted) at step 3, 6 images seen" in capsys.readouterr().err
    monkeypatch.undo()  # the interrupted step's batch is skipped on resume; the run still ends where asked
    assert main(["train", "--config", str(run / "config.yaml"), "--resume"]) == 0
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 10


def test_a_sigterm_ends_the_step_saves_and_exits_143(folder, tmp_path, monkeypatch, capsys):
    """A real SIGTERM (a job scheduler, `kill -TERM`) lets the step finish, saves last.ckpt and
    exits 143, not 0: a script must not take a stopped run for a finished one."""
    code, run = _stopped_at_step_3(folder, tmp_path, monkeypatch, _sigterm)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert code == 143 and ckpt["global_step"] == 4 and ckpt["images_seen"] == 8
    assert "stopped (SIGTERM) at step 4, 8 images seen" in capsys.readouterr().err


def test_a_resumed_run_trains_on_the_batches_an_uninterrupted_one_would(folder, tmp_path, monkeypatch):
    """Stopped mid-epoch and resumed, a run finishes that epoch with the photos it had not yet
    seen, cropped and flipped as they would have been, then goes on as if never stopped: the
    sequence of training batches matches an uninterrupted run's, across the epoch boundary."""
    from dlnet.train.packed import PackedDataModule
    from dlnet.train.training import ColorizationModule

    pack = tmp_path / "p.pack"
    pack_photos(make_split([folder], seed=0), pack, size=32)  # 7 batches of 2 per epoch
    seen: list[tuple[list[int], float]] = []
    transfer, step = PackedDataModule.on_after_batch_transfer, ColorizationModule.training_step

    def recording(self, batch, dataloader_idx):
        out = transfer(self, batch, dataloader_idx)
        if self.trainer.training:
            seen.append((batch[1].tolist(), out["rgb"].float().mean().item()))
        return out

    stop_at = {"step": None}

    def maybe_stopped(self, batch, batch_idx):
        if self.global_step == stop_at["step"]:
            _sigterm()
        return step(self, batch, batch_idx)

    monkeypatch.setattr(PackedDataModule, "on_after_batch_transfer", recording)
    monkeypatch.setattr(ColorizationModule, "training_step", maybe_stopped)
    args = ["train", "--packed", str(pack), "--encoder", "efficientnet_lite0", "--size", "32", "--batch-size", "2",
            "--max-steps", "10", "--limit-val-batches", "1", "--val-every-steps", "5"]
    assert main(args + ["--out", str(tmp_path / "straight")]) == 0
    straight, seen[:] = list(seen), []

    stop_at["step"] = 3
    with pytest.raises(SystemExit):
        main(args + ["--out", str(tmp_path / "stopped")])
    stop_at["step"] = None
    assert len(seen) == 4
    assert main(["train", "--config", str(tmp_path / "stopped" / "config.yaml"), "--resume"]) == 0
    assert len(straight) == 10 and seen == straight


def test_a_run_killed_without_warning_keeps_what_the_clock_saved(folder, tmp_path, monkeypatch):
    """last.ckpt is also saved every --save-every-minutes: a run that dies mid-step (a crash, a
    SIGKILL: no handler runs, nothing is saved on the way out) before its first validation still
    leaves a checkpoint to resume from."""
    from dlnet.train.training import ColorizationModule

    pack = tmp_path / "p.pack"
    pack_photos(make_split([folder], seed=0), pack, size=32)
    step = ColorizationModule.training_step

    def dies_at_step_3(self, batch, batch_idx):
        if self.global_step == 3:
            raise MemoryError("the machine went away")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(ColorizationModule, "training_step", dies_at_step_3)
    run = tmp_path / "run"
    with pytest.raises(MemoryError):
        main(["train", "--packed", str(pack), "--encoder", "efficientnet_lite0", "--size", "32", "--batch-size", "2",
              "--max-steps", "10", "--val-every-steps", "100", "--save-every-minutes", "1e-6", "--out", str(run)])
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
