"""Each option declared once (issue 31): the typed configs' field metadata makes every flag and form
field and holds every range; one error tree; the training module takes a typed config and reads
the checkpoints the code before it wrote."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import pkgutil

import pytest

import dlnet
from dlnet.apps.cli import main
from dlnet.config import flag_of, options
from dlnet.errors import DLNetError, OptionError
from dlnet.evaluate.config import EvaluationConfig
from dlnet.infer.options import MAX_SATURATION, MAX_TEMPERATURE, MIN_SIZE, MIN_TEMPERATURE, InferenceOptions
from dlnet.train.config import TrainConfig
from dlnet.apps.serve_settings import ServeSettings

# Fields that have no flag of their own, and why.
NO_FLAG = {(EvaluationConfig, "progress"): "drawn when stderr is a terminal",
           (ServeSettings, "weights"): "--model, the one flag every command names its model with"}


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    importlib.import_module(f"dlnet.apps.commands.{command}").configure(parser)
    return parser


@pytest.mark.parametrize("config, command", [(TrainConfig, "train"), (EvaluationConfig, "evaluate"),
                                             (InferenceOptions, "colorize"), (ServeSettings, "serve")])
def test_every_config_field_has_its_flag(config, command):
    flags = {s: a for a in _parser(command)._actions for s in a.option_strings}
    for f in dataclasses.fields(config):
        if (config, f.name) in NO_FLAG:
            assert f.name not in options(config)
            continue
        assert f.name in options(config), f"{config.__name__}.{f.name} is declared without option()"
        action = flags.get(flag_of(config, f.name))
        assert action is not None, f"{config.__name__}.{f.name}: no {flag_of(config, f.name)} in dlnet {command}"
        assert action.dest == f.name


def test_train_has_one_flag_per_field_and_they_reach_the_config(tmp_path):
    from dlnet.apps.commands.train import config_from_args

    args = _parser("train").parse_args(["--data", "a", "--data", "b", "--lr", "1e-4", "--size", "64", "--hints",
                                        "--cluster-weights", "1", "2", "--clusters", "2", "--resume",
                                        "--test-fraction", "0.1", "--pretrained"])
    cfg = config_from_args(args)
    assert (cfg.data, cfg.lr, cfg.size, cfg.hints, cfg.cluster_weights, cfg.resume) == \
           (["a", "b"], 1e-4, 64, True, [1.0, 2.0], "last")
    assert (cfg.test_fraction, cfg.pretrained, cfg.epochs) == (0.1, True, TrainConfig.epochs)  # others: defaults


def test_serve_flags_reach_the_settings_and_the_working_size_raises_its_limit(monkeypatch):
    pytest.importorskip("uvicorn")
    from dlnet.apps import serve as server
    from dlnet.apps.commands import serve as command

    made = []
    monkeypatch.setattr(server, "create_app", lambda settings: made.append(settings))
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: None)
    args = _parser("serve").parse_args(["--model", "m.safetensors", "--size", "2048", "--no-rebalance",
                                        "--queue", "3", "--max-upload-mb", "0.5", "--photo-cache-mb", "0"])
    assert command.run(args) == 0
    s = made[0]
    assert (s.weights, s.default_size, s.max_size, s.rebalance, s.queue_size) == ("m.safetensors", 2048, 2048, False, 3)
    assert (s.max_upload_bytes, s.photo_cache_bytes, s.workers) == (500_000, 0, ServeSettings.workers)


def test_every_inference_option_is_a_form_field_of_the_server():
    from fastapi.testclient import TestClient

    from dlnet.apps.serve import ServeSettings, create_app

    class Stand:  # the form needs no model
        takes_hints = False

    app = create_app(Stand(), ServeSettings(max_size=512))
    schema = TestClient(app).get("/openapi.json").json()["components"]["schemas"]
    fields = next(v["properties"] for k, v in schema.items() if "colorize" in k.lower())
    for name, spec in options(InferenceOptions).items():
        assert (name in fields) == spec.form, name  # max_megapixels is the server's setting, not a request's
    assert not options(InferenceOptions)["max_megapixels"].form
    # the ranges and help come from the metadata; a server's own limit may narrow one
    sat = next(t for t in fields["saturation"]["anyOf"] if t.get("type") == "number")
    assert (sat["minimum"], sat["maximum"]) == (0, MAX_SATURATION)
    assert fields["saturation"]["description"].startswith(options(InferenceOptions)["saturation"].help)
    size = next(t for t in fields["size"]["anyOf"] if t.get("type") == "integer")
    assert (size["minimum"], size["maximum"]) == (MIN_SIZE, 512)
    assert next(t for t in fields["format"]["anyOf"] if "enum" in t)["enum"] == ["png", "jpeg", "webp"]


def test_ranges_live_in_the_metadata_only():
    spec = options(InferenceOptions)
    assert (spec["saturation"].low, spec["saturation"].high) == (0, MAX_SATURATION)
    assert (spec["temperature"].low, spec["temperature"].high) == (MIN_TEMPERATURE, MAX_TEMPERATURE)
    assert spec["size"].low == MIN_SIZE == options(EvaluationConfig)["working_size"].low
    from dlnet.color.metrics import SSIM_WINDOW

    assert options(EvaluationConfig)["size"].low == SSIM_WINDOW  # a smaller crop has no SSIM
    import dlnet.apps.commands.train as train_command

    assert not hasattr(train_command, "_RANGES")  # (the train command kept its own copy)


@pytest.mark.parametrize("build, message", [
    (lambda: TrainConfig(batch_size=0), "batch_size must be at least 1, got 0"),  # a lower bound
    (lambda: TrainConfig(lr=0.0), "lr must be a positive number, got 0.0"),  # above 0
    (lambda: TrainConfig(lr=float("nan")), "lr must be a positive number, got nan"),  # finite
    (lambda: InferenceOptions(quality=101), "quality must be a whole number in 1..100, got 101"),  # both bounds
    (lambda: InferenceOptions(quality=90.5), "quality must be a whole number in 1..100, got 90.5"),  # the type
    (lambda: InferenceOptions(saturation=4.5),
     "saturation must be a number in 0..4 (or None: the model's own), got 4.5"),
    (lambda: InferenceOptions(size=16), "size must be at least 32 px (or full size), got 16"),  # a unit, None
    (lambda: TrainConfig(loss="bogus"), "loss must be one of global, local, local-sqrt, rebalanced, "
                                        "classification, got 'bogus'"),  # choices
    (lambda: EvaluationConfig("d", "o", precision="fp16"), "precision must be one of fp32, bf16, got 'fp16'"),
    (lambda: EvaluationConfig("d", "o", size=5), "size must be at least 11 px (or None: the full photos), got 5"),
    (lambda: TrainConfig(size=48), "size must be a multiple of 32, got 48"),  # a check across the range
])
def test_ranges_are_enforced_from_the_metadata(build, message):
    with pytest.raises(OptionError) as err:
        build()
    assert str(err.value) == message


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "x", "--batch-size", "0"], "dlnet train: error: --batch-size must be at least 1, got 0"),
    (["train", "--data", "x", "--cluster-weights", "1", "2"],
     "dlnet train: error: --cluster-weights needs 5 values (one per cluster)"),
    (["evaluate", "--data", "x", "--out", "o", "--resamples", "0"],
     "dlnet evaluate: error: --resamples must be at least 1, got 0"),  # a flag named otherwise than its field
    (["evaluate", "--data", "x", "--out", "o", "--working-size", "8"],
     "dlnet evaluate: error: --working-size must be at least 32 px (or the scored photo's own size), got 8"),
    (["colorize", "x.png", "--quality", "0"],
     "dlnet colorize: error: --quality must be a whole number in 1..100, got 0"),
    (["train", "--data", "x", "--max-time", "1:2"],  # was Lightning's traceback at the start of the run
     "dlnet train: error: --max-time must be DD:HH:MM:SS (days, hours, minutes, seconds; e.g. 00:01:30:00), got '1:2'"),
    (["train", "--data", "x", "--max-steps", "0"],  # was a run that trained nothing and exited 0
     "dlnet train: error: --max-steps must be at least 1, or -1 for no limit, got 0"),
    (["serve", "--queue-timeout", "0"], "dlnet serve: error: --queue-timeout must be a positive number, got 0.0"),
    (["serve", "--workers", "0"], "dlnet serve: error: --workers must be at least 1, got 0"),
    (["serve", "--size", "512", "--max-size", "256"],
     "dlnet serve: error: --size must be at most max_size (256), got 512"),
])
def test_a_bad_flag_is_one_line_naming_it_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message


def test_a_bad_value_in_a_config_file_names_the_file(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("data: [x]\nloss: bogus\n")
    assert main(["train", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == f"dlnet train: error: {config}: loss must be one of global, local, " \
                                              "local-sqrt, rebalanced, classification, got 'bogus'"
    assert main(["train", "--config", str(config), "--loss", "global", "--lr", "-1"]) == 2  # a flag's: named so
    assert capsys.readouterr().err.strip() == "dlnet train: error: --lr must be a positive number, got -1.0"


def test_zero_stands_for_none_where_the_metadata_says_so(tmp_path):
    from dlnet.apps.commands.colorize import _options

    args = _parser("colorize").parse_args(["x.png", "--size", "0", "--format", "jpeg"])
    assert _options(args).size is None and _options(args).format == "jpeg"
    args = _parser("colorize").parse_args(["x.png"])
    assert _options(args) == InferenceOptions()  # the flags' defaults are the options'


# --- one error tree ---------------------------------------------------------------------------

INTERNAL = {"Stopped", "TooLong", "Rejected"}  # control flow between dlnet's own threads / its HTTP answers


def test_every_user_error_derives_from_one_base():
    found = {}
    for info in pkgutil.walk_packages(dlnet.__path__, "dlnet."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra not installed
            continue
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and issubclass(cls, Exception) and cls.__module__ == info.name:
                found[name] = cls
    assert {"OptionError", "HintError", "WeightsError", "DataError", "ImageError", "EvaluationError",
            "UsageError", "OnnxUnavailable", "RuntimeChoiceError", "VideoError"} <= set(found)
    for name, cls in found.items():
        assert issubclass(cls, DLNetError) or name in INTERNAL, f"{cls.__module__}.{name} is outside the tree"
    from dlnet.infer.options import OptionError as from_options
    from dlnet.io.photolist import DataError

    assert from_options is OptionError and issubclass(DataError, ValueError)  # old names and bases still work


def test_the_cli_prints_any_dlnet_error_as_one_line_exit_2(monkeypatch, capsys):
    from dlnet.apps.commands import models
    from dlnet.model.weights import WeightsError

    def broken(args):
        raise WeightsError("m.safetensors: no such model file\n(second line)")

    monkeypatch.setattr(models, "run", broken)
    assert main(["models"]) == 2
    assert capsys.readouterr().err == "dlnet models: error: m.safetensors: no such model file\\n(second line)\n"


# --- the training module's typed config and the checkpoints before it --------------------------

OLD_HPARAMS = ["model", "loss", "clusters", "cluster_weights", "lr", "schedule", "global_weight", "encoder_lr_scale",
               "warmup_steps", "ab_prior"]  # what checkpoints written before this change hold, in this order


def _module(**fields):
    from dlnet.model.net import ModelConfig
    from dlnet.train.training import ColorizationModule

    model = ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8))
    return ColorizationModule(model, TrainConfig(**fields))


def test_the_module_takes_a_typed_config_and_saves_the_old_hyper_parameters(tmp_path):
    import torch

    from dlnet.model.weights import load_model
    from dlnet.train.training import ColorizationModule

    module = _module(loss="global", lr=2e-4, encoder_lr_scale=0.5, warmup_steps=3)
    assert list(module.hparams) == OLD_HPARAMS
    assert (module.hparams.loss, module.hparams.lr, module.hparams.warmup_steps) == ("global", 2e-4, 3)
    with pytest.raises(TypeError):
        ColorizationModule(module.hparams.model, TrainConfig(), loss="global")
    # A checkpoint as Lightning writes it (the old code's hparams_name too): plain values only,
    # so load_model reads it with weights_only=True, and load_from_checkpoint rebuilds the module.
    for name in ("kwargs", None):
        path = tmp_path / f"{name}.ckpt"
        torch.save({"hyper_parameters": dict(module.hparams), "hparams_name": name, "state_dict": module.state_dict(),
                    "pytorch-lightning_version": "2.5.0"}, path)
        assert torch.load(path, weights_only=True)["hyper_parameters"]["lr"] == 2e-4
        model = load_model(path)
        assert all(torch.equal(v, module.model.state_dict()[k]) for k, v in model.state_dict().items())
        again = ColorizationModule.load_from_checkpoint(path, map_location="cpu")
        assert dict(again.hparams) == dict(module.hparams)
        enc, dec = again.configure_optimizers()["optimizer"].param_groups  # (a warm-up: with its scheduler)
        assert (enc["initial_lr"], dec["initial_lr"]) == (1e-4, 2e-4)  # the learning-rate groups as before


@pytest.mark.parametrize("device, says", [("banana", "must be cpu, cuda, cuda:1, ... (a device PyTorch knows), got 'banana'"),
                                          ("cuda:7", "cuda:7: not available on this machine")])
@pytest.mark.parametrize("argv", [["colorize", "photo.png"], ["serve"],
                                  ["evaluate", "--data", "photo.png", "--out", "report", "--model", "m=dlnet-effnet-unet"]])
def test_a_device_this_machine_lacks_is_one_line_in_every_command(argv, device, says, tmp_path, monkeypatch, capsys):
    """--device reached PyTorch unchecked in dlnet serve and dlnet evaluate: a traceback at load."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (40, 30), (200, 40, 40)).save("photo.png")
    assert main([*argv, "--device", device]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dlnet {argv[0]}: error: --device {says}"), err
    assert not (tmp_path / "colorized").exists() and not (tmp_path / "report").exists()


def test_the_api_refuses_such_a_device_as_an_option_error():
    from dlnet import Colorizer

    with pytest.raises(OptionError, match="device must be cpu, cuda"):
        Colorizer.from_pretrained(device="banana")
