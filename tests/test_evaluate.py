"""dlnet evaluate: ground truth, method matching, outputs, bootstrap, the grey-truth rule, the colour
figures and the CLI, on tiny images."""

import contextlib
import csv
import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dlnet.apps.cli import main
from dlnet.evaluate.protocol import EvaluationError, evaluate, find_truth, match_files
from dlnet.model.net import DLNet, ModelConfig
from dlnet.evaluate.report import PSNR_CAP_DB, bootstrap_change, bootstrap_mean
from dlnet.model.weights import save_model
from dlnet.color.rebalance_config import RebalanceConfig

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
                          rebalance=RebalanceConfig(gamma=0.5))  # saturates: more colour
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
    for part in ("## Averages", "## Change vs the grey baseline", "## Change vs m", "### SSIM", "| truth |"):
        assert part in md
    summary = json.loads(files["summary.json"].read_text())
    assert list(summary["methods"]) == ["grey", "m", "m+rebalance", "same"]
    assert summary["methods"]["grey"]["n"] == N
    assert "No photo left out: none has a grey ground truth" in md  # colour photos only: nothing left out
    grid = Image.open(files["grid.png"])
    assert grid.format == "PNG" and grid.width > grid.height  # 3 rows x 5 columns


def test_report_gives_paired_db_differences_and_colour_vs_truth(setup):
    """The change tables lead with the paired PSNR difference in dB; colour measures carry their
    ratio to the truth's, the two figures every comparison quotes."""
    summary = setup["result"].summary
    md = setup["result"].files["report.md"].read_text()
    diff = summary["vs_grey"]["same"]["psnr"]["diff"]
    assert "| Method | PSNR diff (dB) | PSNR % | SSIM % | MSE %" in md
    assert f"| same | {diff['mean']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}] |" in md
    assert diff["mean"] > 10  # the truth itself (as PNG) against grey
    m, truth = summary["methods"]["same"]["colourfulness"]["mean"], summary["truth"]["colourfulness"]["mean"]
    row = next(line for line in md.splitlines() if line.startswith("| same |"))
    assert f"({m / truth:.2f}x)" in row and abs(m / truth - 1) < 0.05  # the same photos: about 1.00x
    grey_row = next(line for line in md.splitlines() if line.startswith("| grey |"))
    assert "x)" not in grey_row  # no ratio for the baseline


def test_unreadable_photo_is_reported_and_skipped(setup):
    assert len(setup["result"].failures) == 1
    assert "broken.jpg" in setup["stderr"] and "cannot read image" in setup["stderr"]


def test_grey_baseline_has_no_colour(setup):
    summary = setup["result"].summary
    assert summary["methods"]["grey"]["colourfulness"]["mean"] < 1  # 8-bit rounding only
    assert summary["truth"]["colourfulness"]["mean"] > 20


def test_scores_the_8_bit_photos_a_user_gets(setup):
    """The checkpoint's score is that of the photo ``dlnet colorize`` gives for the crop, and the
    grey baseline's that of the grey half of ``--side-by-side``: the same code, 8-bit output."""
    from dlnet.color import metrics
    from dlnet.infer.colorizer import Colorizer
    from dlnet.io.imageio import read_rgb8, resize_crop

    truth = resize_crop(read_rgb8(setup["data"] / "p0.jpg"), 64)
    colorizer = Colorizer.from_pretrained(str(setup["model"]), device="cpu", precision="fp32")  # colorize's size
    both = np.asarray(colorizer.colorize(truth, side_by_side=True))
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255
    rows = {r["method"]: r for r in setup["result"].rows if r["image"] == "p0.jpg"}
    for method, out in (("grey", both[:, :64]), ("m", both[:, 64:])):
        assert rows[method]["mse_rgb"] == pytest.approx(metrics.mse_rgb(as_tensor(out), as_tensor(truth)).item())


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


@pytest.fixture(scope="module")
def grey_truth_data(tmp_path_factory):
    """Three colour photos and one black-and-white one; a method "p" that returns p0, p1 and bw
    exactly and p2 with inverted colours (far below grey)."""
    root = tmp_path_factory.mktemp("greytruth")
    data, pred = root / "data", root / "pred"
    data.mkdir()
    pred.mkdir()
    for i in range(3):
        Image.fromarray(_photo(i, 32, 32)).save(data / f"p{i}.png")
        Image.fromarray(_photo(i, 32, 32) if i < 2 else 255 - _photo(i, 32, 32)).save(pred / f"p{i}.png")
    bw = np.repeat(_photo(5, 32, 32).mean(axis=-1, keepdims=True), 3, axis=-1).astype(np.uint8)
    Image.fromarray(bw).save(data / "bw.png")
    Image.fromarray(bw).save(pred / "bw.png")
    return data, pred


def _run(data, out, **kw):
    return evaluate(data, out, preds={"p": data.parent / "pred"}, size=32, grid=0, device="cpu",
                    n_resamples=100, **kw)


def test_grey_truth_photos_are_left_out_and_counted(grey_truth_data, tmp_path):
    data, _ = grey_truth_data
    result = _run(data, tmp_path / "r")
    meta, ms = result.summary["meta"], result.summary["methods"]
    assert meta["grey_truth"] == {"below": 1.0, "count": 1, "kept": False, "images": ["bw.png"]}
    assert meta["images"] == 4 and meta["images_scored"] == 3
    assert ms["grey"]["n"] == ms["p"]["n"] == 3 and result.summary["truth"]["colourfulness"]["n"] == 3
    assert ms["grey"]["psnr_inf"] == 0  # the grey photo's perfect grey score is not averaged
    rows = _csv(result.files["per_image.csv"])  # still listed, marked
    assert {(r["image"], r["left_out"]) for r in rows if r["left_out"]} == {("bw.png", "grey_truth")}
    assert sum(r["image"] == "bw.png" for r in rows) == 2  # grey and p
    assert "1 photos left out because their ground truth is grey" in result.files["report.md"].read_text()
    # beats grey: p0 and p1 are exact (inf > grey's PSNR), p2 is inverted (below grey): 2 of 3
    by = {(r["image"], r["method"]): float(r["psnr"]) for r in rows}
    assert by[("p2.png", "p")] < by[("p2.png", "grey")] < by[("p0.png", "p")] == math.inf
    assert ms["p"]["beats_grey"]["mean"] == pytest.approx(2 / 3) and ms["p"]["beats_grey"]["n"] == 3
    assert ms["grey"]["beats_grey"] is None


def test_keep_grey_truth_keeps_them(grey_truth_data, tmp_path, capsys):
    data, pred = grey_truth_data
    out = tmp_path / "r"
    assert main(["evaluate", "--data", str(data), "--pred", f"p={pred}", "--size", "32", "--grid", "0",
                 "--device", "cpu", "--resamples", "50", "--out", str(out), "--keep-grey-truth"]) == 0
    assert "1 photos whose ground truth is grey (colourfulness < 1) are kept" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    ms = summary["methods"]
    assert summary["meta"]["grey_truth"]["kept"] and summary["meta"]["grey_truth"]["count"] == 1
    assert ms["grey"]["n"] == 4 and ms["grey"]["psnr_inf"] == 1
    assert ms["p"]["beats_grey"]["mean"] == pytest.approx(2 / 4)  # on bw both are exact: a tie, not a win
    assert all(r["left_out"] == "" for r in _csv(out / "per_image.csv"))


def test_only_grey_truth_is_a_clear_error(grey_truth_data, tmp_path):
    data, _ = grey_truth_data
    with pytest.raises(EvaluationError, match="grey ground truth.*--keep-grey-truth"):
        evaluate(data / "bw.png", tmp_path / "r", grid=0, size=32, device="cpu")


def test_colour_figures_of_grey_and_truth(grey_truth_data, tmp_path):
    data, _ = grey_truth_data
    result = _run(data, tmp_path / "r")
    ms, truth = result.summary["methods"], result.summary["truth"]
    assert ms["grey"]["hue_spread"]["mean"] == 0  # no pixel of chroma >= 5
    assert 0 < truth["hue_spread"]["mean"] <= 1 and truth["hue_spread"]["n"] == 3
    rows = [r for r in result.rows if r["method"] == "p" and r["image"] in ("p0.png", "p1.png")]
    for r in rows:  # an exact copy: the truth's hue spread, no colour bias
        assert r["hue_spread"] == pytest.approx(r["hue_spread_truth"])
        assert r["bias_a"] == pytest.approx(0, abs=1e-9) and r["bias_b"] == pytest.approx(0, abs=1e-9)
    md = result.files["report.md"].read_text()
    for part in ("| Hue spread | Beats grey |", "## Mean colour bias", "### Hue spread"):
        assert part in md


def test_working_size_is_the_size_colour_is_predicted_at(tmp_path, monkeypatch):
    """--working-size sets the Colorizer's working size; by default it is dlnet colorize's (it was the
    scored photo's: 256 against colorize's 128), 0 the scored photo's."""
    from dlnet.infer.options import DEFAULT_SIZE

    import dlnet.infer.colorizer
    from dlnet.apps.cli import main
    from PIL import Image

    seen = []
    real = dlnet.infer.colorizer.Colorizer.__init__

    def spy(self, model, *args, size=None, **kwargs):
        seen.append(size)
        real(self, model, *args, size=size, **kwargs)

    monkeypatch.setattr(dlnet.infer.colorizer.Colorizer, "__init__", spy)
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(photo)
    from _tiny_model import tiny_model_file

    model = tiny_model_file(tmp_path)
    args = ["evaluate", "--data", str(photo), "--model", f"m={model}", "--size", "32", "--grid", "0",
            "--resamples", "10"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--working-size", "64"]) == 0
    assert main(args + ["--out", str(tmp_path / "d"), "--working-size", "0"]) == 0
    assert seen == [DEFAULT_SIZE, 64, 32]
    assert main(args + ["--out", str(tmp_path / "c"), "--working-size", "8"]) == 2
