"""The defects of issue 31 in the model files, the ONNX cache and training's settings, one test each.

Each test fails on the code before its fix (the video defects are in test_video.py, the server's
queue in test_serve_queue.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny_model import tiny_model, tiny_model_file
from conftest import gradient_photo

from dlnet.apps.cli import main
from dlnet.model.weights import WeightsError, images_seen, load_model


class _RunsCode:
    """Unpickled, it writes a file: what a crafted checkpoint could do to a user's computer."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.fixture
def photo(tmp_path) -> Path:
    Image.fromarray(gradient_photo(40, 56)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


def test_1_a_checkpoint_cannot_run_code(tmp_path, photo, capsys):
    marker = tmp_path / "ran.txt"
    model = tiny_model()
    evil = tmp_path / "evil.ckpt"
    torch.save({"hyper_parameters": {"model": model.config.to_dict()},
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "images_seen": _RunsCode(marker)}, evil)
    with pytest.raises(WeightsError, match="refused"):
        load_model(evil)
    with pytest.raises(WeightsError, match="refused"):
        images_seen(evil)
    for runtime in ("torch", "onnx"):
        assert main(["colorize", str(photo), "--model", str(evil), "-o", str(tmp_path / "out"), "--runtime", runtime]) == 2
        err = capsys.readouterr().err.strip()
        assert "evil.ckpt: refused" in err and "\n" not in err
    assert not marker.exists() and not (tmp_path / "out").exists()
    # A checkpoint of tensors and plain values (what training writes) loads as before.
    good = tmp_path / "good.ckpt"
    torch.save({"hyper_parameters": {"model": model.config.to_dict()}, "images_seen": 7,
                "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, good)
    assert images_seen(good) == 7
    l = torch.rand(1, 1, 32, 32) * 100
    with torch.no_grad():
        torch.testing.assert_close(load_model(good)(l), model(l))


def test_3_a_damaged_cached_onnx_file_is_exported_again(tmp_path, photo, capsys):
    pytest.importorskip("onnxruntime")
    from dlnet.infer.onnxrun import cached_onnx

    weights = tiny_model_file(tmp_path)
    cached = cached_onnx(weights)
    cached.write_bytes(cached.read_bytes()[:1000])  # a copy cut short, a full disk
    for i, runtime in enumerate(("onnx", None)):
        argv = ["colorize", str(photo), "--model", str(weights), "-o", str(tmp_path / f"out{i}")]
        assert main(argv + (["--runtime", runtime] if runtime else [])) == 0, capsys.readouterr().err
        assert cached.stat().st_size > 100_000  # repaired: onnxruntime runs it again
        cached.write_bytes(cached.read_bytes()[:1000])
    capsys.readouterr()


@pytest.mark.parametrize("runtime", [None, "onnx", "torch"])
def test_3_a_model_file_that_is_no_model_is_one_line_whatever_the_runtime(tmp_path, photo, capsys, runtime):
    """Before: the ONNX cache took the bad model for a damaged cache file, exported it again, and
    the chosen runtime fell back to PyTorch with a warning line before the error line."""
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    argv = ["colorize", str(photo), "--model", str(bad), "-o", str(tmp_path / "out")]
    assert main(argv + (["--runtime", runtime] if runtime else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dlnet colorize: error: {bad}: cannot load model"), err
    assert not (tmp_path / "out").exists()


def test_3_messages_never_start_with_none(tmp_path, photo, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DLNET_CACHE", str(photo))  # a file, not a folder
    assert main(["colorize", str(photo), "-o", str(tmp_path / "out"), "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "None" not in err
    assert f"$DLNET_CACHE={photo}: the ONNX cache must be a folder, and this is a file" in err
    # Chosen, not asked for: PyTorch colorizes instead (one warning line), the photo is written.
    assert main(["colorize", str(photo), "-o", str(tmp_path / "out"), "--model", str(tiny_model_file(tmp_path))]) == 0
    assert any((tmp_path / "out").rglob("photo.png"))


def test_2_training_without_a_usable_validation_photo_is_refused_up_front(tmp_path, capsys):
    """Before: a full epoch of training, then a traceback (no val/loss to choose the best model by)
    and no checkpoint."""
    from conftest import write_photo_folder

    write_photo_folder(tmp_path / "colour", categories=1, per_category=6, size=48)
    grey = tmp_path / "grey" / "cat"
    grey.mkdir(parents=True)
    for i in range(6):
        Image.fromarray(np.full((48, 48), 40 * i, np.uint8)).convert("RGB").save(grey / f"{i}.png")
    (grey / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    args = ["train", "--data", str(tmp_path / "grey"), "--extra-train", str(tmp_path / "colour"),
            "--out", str(tmp_path / "run"), "--size", "32", "--max-steps", "1", "--workers", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "validation photos can be used" in err and "\n" not in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("text, why", [
    ("lr: [1, 2\n", "not valid YAML"),
    (b"lr: 0.1\nout: \xff\xfe\n", "not UTF-8"),
    ("lr: big\n", "lr"),
    ("- a list\n", "a mapping"),
    ("bogus: 1\n", "unknown fields"),
])
def test_5_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, why):
    config = tmp_path / "config.yaml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(config) in err and why in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["flag", "config"])
@pytest.mark.parametrize("value", ["-0.001", "0", "nan", "inf"])
def test_6_a_learning_rate_must_be_positive(tmp_path, capsys, where, value):
    args = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")]
    if where == "flag":
        args += [f"--lr={value}"]
    else:
        (tmp_path / "config.yaml").write_text(f"lr: {value}\n")
        args += ["--config", str(tmp_path / "config.yaml")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "lr must be a positive number" in err and "\n" not in err, err
    assert not (tmp_path / "run").exists()


def test_6_other_rates_and_counts_are_checked_too(tmp_path, capsys):
    for flag in ("--encoder-lr-scale=-1", "--batch-size=0", "--epochs=-2", "--size=8"):
        assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), flag]) == 2
        err = capsys.readouterr().err.strip()
        assert f"{flag.split('=')[0]} must be" in err and "\n" not in err, (flag, err)
