"""dlnet evaluate --merge: reports scored separately join into the report of one joint evaluation;
gzipped reports read alike; reports of other photos, setups or clashing names are refused."""

import contextlib
import gzip
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dlnet.apps.cli import main
from dlnet.evaluate.merge import merge_reports
from dlnet.evaluate.protocol import EvaluationError, evaluate
from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import save_model


def _photo(i: int, n: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n] / n
    rgb = np.stack([255 * x * (1 + i % 3) / 3, 40 + 200 * y, 255 * (1 - x) * (i % 2) + 30 * i], axis=-1)
    return rgb.clip(0, 255).astype(np.uint8)


def _eval(data, out, **kw):
    kw.setdefault("size", 48)
    with contextlib.redirect_stderr(io.StringIO()):
        return evaluate(data, out, grid=0, device="cpu", n_resamples=100, **kw)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    data, same = root / "data", root / "same"
    data.mkdir()
    same.mkdir()
    for i in range(5):
        Image.fromarray(_photo(i)).save(data / f"p{i}.png")
        Image.fromarray(_photo(i)).save(same / f"p{i}.png")  # a method that returns the truth
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(data / "grey.png")  # a grey truth: left out
    models = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        models[f"m{seed}"] = save_model(DLNet(ModelConfig(encoder="efficientnet_lite0")), root / f"m{seed}.safetensors")
    joint = _eval(data, root / "joint", checkpoints=models, preds={"same": same})
    a = _eval(data, root / "a", checkpoints={"m0": models["m0"]})
    b = _eval(data, root / "b", checkpoints={"m1": models["m1"]}, preds={"same": same})
    return {"root": root, "data": data, "models": models, "joint": joint, "a": root / "a", "b": root / "b"}


def test_merged_report_equals_the_joint_evaluation(reports, tmp_path):
    merged = merge_reports([reports["a"], reports["b"]], tmp_path / "m", n_resamples=100)
    joint = reports["joint"].summary
    s = merged.summary
    assert list(s["methods"]) == ["grey", "m0", "m1", "same"]
    assert s["meta"]["grey_truth"]["count"] == 1 and s["meta"]["images_scored"] == 5
    assert s["meta"]["merged_from"] == [str(reports["a"]), str(reports["b"])]
    for m in s["methods"]:
        for k in ("psnr", "ssim", "colourfulness", "hue_spread", "bias_a"):
            assert s["methods"][m][k]["mean"] == pytest.approx(joint["methods"][m][k]["mean"], rel=1e-12)
        assert s["methods"][m]["n"] == joint["methods"][m]["n"]
    # The paired changes vs the first checkpoint (m0, from report a) span the two reports.
    assert s["vs_first_checkpoint"]["reference"] == "m0"
    for m in ("m1", "same"):
        got = s["vs_first_checkpoint"]["methods"][m]["psnr"]["diff"]
        want = joint["vs_first_checkpoint"]["methods"][m]["psnr"]["diff"]
        assert got["mean"] == pytest.approx(want["mean"], rel=1e-9)
        assert got["ci95"] == pytest.approx(want["ci95"], rel=1e-9)
    assert s["methods"]["same"]["beats_grey"]["mean"] == 1.0  # the truth beats grey on every photo
    assert set(merged.files) == {"per_image.csv", "summary.json", "report.md"}
    assert "## Change vs m0" in merged.files["report.md"].read_text()


def test_gzipped_reports_merge_alike(reports, tmp_path):
    zipped = tmp_path / "b"
    zipped.mkdir()
    (zipped / "summary.json").write_bytes((reports["b"] / "summary.json").read_bytes())
    (zipped / "per_image.csv.gz").write_bytes(gzip.compress((reports["b"] / "per_image.csv").read_bytes()))
    plain = merge_reports([reports["a"], reports["b"]], tmp_path / "plain", n_resamples=100)
    packed = merge_reports([reports["a"], zipped], tmp_path / "packed", n_resamples=100)
    assert (json.dumps(plain.summary["methods"], sort_keys=True)
            == json.dumps(packed.summary["methods"], sort_keys=True))


def test_refuses_reports_that_are_not_comparable(reports, tmp_path):
    root = reports["root"]
    other_crop = _eval(reports["data"], root / "crop32", checkpoints={"m9": reports["models"]["m1"]}, size=32)
    with pytest.raises(EvaluationError, match="size 32 differs"):
        merge_reports([reports["a"], other_crop.files["summary.json"].parent], tmp_path / "x")
    fewer = _eval(reports["data"], root / "fewer", checkpoints={"m8": reports["models"]["m1"]}, limit=3)
    with pytest.raises(EvaluationError, match="scored other photos"):
        merge_reports([reports["a"], root / "fewer"], tmp_path / "x")
    with pytest.raises(EvaluationError, match="'m0' is in both"):
        merge_reports([reports["a"], reports["a"]], tmp_path / "x")
    with pytest.raises(EvaluationError, match="not an evaluation report"):
        merge_reports([reports["a"], tmp_path], tmp_path / "x")
    with pytest.raises(EvaluationError, match="at least two"):
        merge_reports([reports["a"]], tmp_path / "x")
    with pytest.raises(EvaluationError, match="already holds"):
        merge_reports([reports["a"], reports["b"]], reports["a"])
    assert not (tmp_path / "x").exists()  # nothing written on a refusal


def test_cli_merge_and_its_usage_errors(reports, tmp_path, capsys):
    assert main(["evaluate", "--merge", str(reports["a"]), str(reports["b"]), "--out", str(tmp_path / "m"),
                 "--resamples", "50"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "summary.json").read_text())["bootstrap"]["n_resamples"] == 50
    assert main(["evaluate", "--merge", str(reports["a"]), str(reports["b"]), "--out", str(tmp_path / "n"),
                 "--model", f"x={reports['models']['m0']}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--model cannot be used with it" in err and len(err.splitlines()) == 1
    assert main(["evaluate", "--merge", str(reports["a"]), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not an evaluation report" in capsys.readouterr().err
