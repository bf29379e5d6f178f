"""dlnet evaluate: ground truth, method matching, outputs, bootstrap and the CLI, on tiny images."""

import contextlib
import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dlnet.cli import main
from dlnet.evaluate import EvaluationError, evaluate, find_truth, match_files
from dlnet.model import DLNet, ModelConfig
from dlnet.report import PSNR_CAP_DB, bootstrap_change, bootstrap_mean
from dlnet.weights import save_model

N = 6


def _photo(i: int, h: int = 64, w: int = 64) -> np.ndarray:
    """A colour gradient that differs per i."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    rgb = np.stack([255 * x * (1 + i % 3) / 3, 40 + 200 * y, 255 * (1 - x) * (i % 2) + 20 * i], axis=-1)
    return rgb.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data, same = root / "data", root / "same"
    (data / "cat").mkdir(parents=True)
    (same / "cat").mkdir(parents=True)
    for i in range(N):
        rel = f"cat/p{i}.jpg" if i >= 4 else f"p{i}.jpg"
        Image.fromarray(_photo(i)).save(data / rel, quality=95)
        if i != 2:  # one photo missing from the other method's folder
            # Another method that returns the truth exactly, saved as PNG (names match without extension).
            Image.open(data / rel).save((same / rel).with_suffix(".png"))
    (data / "broken.jpg").write_bytes(b"not a jpeg")
    torch.manual_seed(0)
    model_path = save_model(DLNet(ModelConfig(encoder="efficientnet_lite0")), root / "m.safetensors")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = evaluate(data, root / "report", checkpoints={"m": model_path}, preds={"same": same}, size=64,
                          grid=3, device="cpu", batch_size=4, n_resamples=200,
                          rebalance=lambda ab, l: ab * 2)
    return {"root": root, "data": data, "same": same, "model": model_path, "result": result,
            "stderr": err.getvalue()}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_writes_csv_report_summary_and_grid(setup):
    files = setup["result"].files
    assert set(files) == {"per_image.csv", "report.md", "summary.json", "grid.png"}
    rows = _csv(files["per_image.csv"])
    assert list(rows[0]) == ["image", "method", "psnr", "ssim", "mse_rgb", "colourfulness", "colourfulness_truth",
                             "hue_spread", "hue_spread_truth", "bias_a", "bias_b", "left_out"]
    methods = {r["method"] for r in rows}
    assert methods == {"grey", "m", "m+rebalance", "same"}
    assert sum(r["method"] == "grey" for r in rows) == N  # the baseline is there for every photo
    assert {r["image"] for r in rows} == {f"p{i}.jpg" for i in range(4)} | {"cat/p4.jpg", "cat/p5.jpg"}
    md = files["report.md"].read_text()
    for part in ("## Averages", "% change vs the grey baseline", "% change vs m", "### SSIM", "| truth |"):
        assert part in md
    summary = json.loads(files["summary.json"].read_text())
    assert list(summary["methods"]) == ["grey", "m", "m+rebalance", "same"]
    assert summary["methods"]["grey"]["n"] == N
    grid = Image.open(files["grid.png"])
    assert grid.format == "PNG" and grid.width > grid.height  # 3 rows x 5 columns


def test_unreadable_photo_is_reported_and_skipped(setup):
    assert len(setup["result"].failures) == 1
    assert "broken.jpg" in setup["stderr"] and "cannot read image" in setup["stderr"]


def test_grey_baseline_has_no_colour(setup):
    summary = setup["result"].summary
    assert summary["methods"]["grey"]["colourfulness"]["mean"] < 1  # 8-bit rounding only
    assert summary["truth"]["colourfulness"]["mean"] > 20


def test_rebalance_is_scored_as_its_own_method(setup):
    ms = setup["result"].summary["methods"]
    assert ms["m+rebalance"]["colourfulness"]["mean"] > ms["m"]["colourfulness"]["mean"]


def test_pred_matching_counts_missing(setup):
    same = setup["result"].summary["methods"]["same"]
    assert same["n"] == N - 1 and same["missing"] == 1
    assert "1 of 6 photos have no match" in setup["stderr"]
    assert "**1 photos missing**" in setup["result"].files["report.md"].read_text()


def test_pred_equal_to_truth_scores_perfect(setup):
    rows = [r for r in _csv(setup["result"].files["per_image.csv"]) if r["method"] == "same"]
    assert all(math.isinf(float(r["psnr"])) for r in rows)  # the CSV keeps the truth: inf
    assert all(float(r["ssim"]) == pytest.approx(1.0) and float(r["mse_rgb"]) == 0 for r in rows)
    same = setup["result"].summary["methods"]["same"]
    assert same["psnr"]["mean"] == PSNR_CAP_DB and same["psnr_inf"] == N - 1  # averages use the cap
    assert same["ssim"]["mean"] == pytest.approx(1.0)


def test_confidence_intervals_contain_the_mean(setup):
    summary = setup["result"].summary
    for name, entry in summary["methods"].items():
        for metric in ("psnr", "ssim", "mse_rgb", "colourfulness"):
            lo, hi = entry[metric]["ci95"]
            assert lo <= entry[metric]["mean"] + 1e-9 and entry[metric]["mean"] <= hi + 1e-9, (name, metric)
    change = summary["vs_grey"]["m"]["psnr"]["pct"]
    assert change["ci95"][0] <= change["mean"] <= change["ci95"][1]


def test_bootstrap_functions():
    rng = np.random.default_rng(1)
    x = rng.normal(30, 2, 200)
    est = bootstrap_mean(x, n_resamples=500, seed=0)
    assert est["ci95"][0] < est["mean"] < est["ci95"][1] and est["n"] == 200
    assert est["ci95"][1] - est["ci95"][0] < 1.5  # about 4 standard errors wide, not more
    assert bootstrap_mean([5.0])["ci95"] is None  # one photo: no interval
    paired = bootstrap_change(x + 3, x, n_resamples=500, seed=0)
    assert paired["diff"]["mean"] == pytest.approx(3) and paired["diff"]["ci95"] == pytest.approx([3, 3])
    assert paired["pct"]["mean"] == pytest.approx(300 / x.mean())


def test_file_list_names_are_relative_to_common_folder(setup, tmp_path):
    data = setup["data"]
    lst = tmp_path / "test.txt"
    lst.write_text(f"{data / 'p1.jpg'}\n\n{data / 'cat' / 'p4.jpg'}\n")
    assert [t.name for t in find_truth(lst)] == ["p1.jpg", "cat/p4.jpg"]
    rel = data / "list.txt"
    rel.write_text("p0.jpg\ncat/p5.jpg\n")  # relative to the list's folder
    try:
        assert [t.name for t in find_truth(rel)] == ["p0.jpg", "cat/p5.jpg"]
    finally:
        rel.unlink()


def test_match_by_unique_basename(setup, tmp_path):
    truths = [t for t in find_truth(setup["data"]) if t.name != "broken.jpg"]
    Image.fromarray(_photo(4)).save(tmp_path / "p4.png")  # flat folder: cat/p4.jpg matches by name
    matched = dict(zip((t.name for t in truths), match_files(truths, tmp_path)))
    assert matched["cat/p4.jpg"] == tmp_path / "p4.png"
    assert sum(v is not None for v in matched.values()) == 1


def test_usage_errors_before_work(setup, tmp_path):
    data, model = setup["data"], setup["model"]
    with pytest.raises(EvaluationError, match="no such folder"):
        evaluate(tmp_path / "nope", tmp_path / "r")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluationError, match="no images found"):
        evaluate(tmp_path / "empty", tmp_path / "r")
    with pytest.raises(EvaluationError, match="already holds"):
        evaluate(data, setup["result"].files["report.md"].parent)
    with pytest.raises(EvaluationError, match="reserved"):
        evaluate(data, tmp_path / "r", checkpoints={"grey": model})
    with pytest.raises(EvaluationError, match="not among"):
        evaluate(data, tmp_path / "r", grid_images=["zebra.jpg"])
    with pytest.raises(EvaluationError, match="no such model file"):
        evaluate(data, tmp_path / "r", checkpoints={"x": tmp_path / "missing.safetensors"})
    assert not (tmp_path / "r").exists()


def test_cli_exit_codes(setup, tmp_path, capsys):
    assert main(["evaluate", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "no such folder" in capsys.readouterr().err
    # Full-resolution photos of two sizes, one unreadable file: exit 1, the rest scored.
    data = tmp_path / "full"
    data.mkdir()
    Image.fromarray(_photo(0, 48, 64)).save(data / "a.png")
    Image.fromarray(_photo(1, 64, 40)).save(data / "b.png")
    (data / "c.png").write_bytes(b"")
    out = tmp_path / "rep"
    code = main(["evaluate", "--data", str(data), "--checkpoint", f"m={setup['model']}", "--out", str(out),
                 "--full-res", "--grid-images", "b.png", "--device", "cpu", "--resamples", "50"])
    captured = capsys.readouterr()
    assert code == 1 and "c.png" in captured.err
    assert "grey" in captured.out and "PSNR" in captured.out
    rows = _csv(out / "per_image.csv")
    assert len(rows) == 4 and {r["image"] for r in rows} == {"a.png", "b.png"}
    assert main(["evaluate", "--data", str(data), "--out", str(out)]) == 2  # never overwrites
    assert main(["evaluate", "--data", str(data), "--out", str(out), "--overwrite", "--grid", "0"]) == 1
