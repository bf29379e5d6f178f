"""dlnet.infer.batch (the photo path of ``dlnet colorize`` for any program) and the one folder scanner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from conftest import gradient_photo
from dlnet.infer.batch import VIDEO, colorize_jobs, plan_jobs
from dlnet.infer.options import InferenceOptions
from dlnet.infer.pipeline import PhotoPipeline
from dlnet.io.photolist import find_photos
from dlnet.train.data import find_images


class FlatColour(PhotoPipeline):
    """A stand-in model: every photo gets one a*b*; a photo of width 13 makes the model fail."""

    def __init__(self, batch_size: int = 4) -> None:
        self.options, self.batch_size = InferenceOptions(size=32), batch_size

    def _predict_batch(self, ls, shape, options):
        if any(l.shape[1] == 13 for l in ls):
            raise RuntimeError("the model broke")
        return np.full((len(ls), 2, *shape), 20.0, np.float32)


def _photo(path: Path, w: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gradient_photo(24, w)).save(path)
    return path


def test_one_scanner_skips_hidden_files_for_colorize_and_training(tmp_path):
    """Before: training's scanner took ``.thumbs/x.jpg`` and ``._a.jpg`` (macOS resource forks), colorize did not."""
    for name in ("a.jpg", "sub/b.png", "._a.jpg", ".thumbs/x.jpg", "sub/.c.png", "notes.txt"):
        _photo(tmp_path / "in" / name) if name.endswith(("jpg", "png")) else (tmp_path / "in" / name).write_text("x")
    expected = [tmp_path / "in" / "a.jpg", tmp_path / "in" / "sub" / "b.png"]
    assert find_photos(tmp_path / "in") == expected
    assert find_images(tmp_path / "in") == expected  # the training split's scanner
    plan = plan_jobs([tmp_path / "in"], tmp_path / "out")
    assert [job.src for job in plan.jobs] == expected and not plan.failures


def test_a_link_to_a_photo_elsewhere_is_planned_where_the_link_is(tmp_path, monkeypatch):
    """Before: a traceback (the link's target is not under the folder given)."""
    elsewhere = _photo(tmp_path / "elsewhere" / "original.png")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "linked.png").symlink_to(elsewhere)
    (tmp_path / "in" / "again.png").symlink_to(elsewhere)  # a second link: a second photo, not a lost one
    for cwd in (tmp_path, tmp_path / "elsewhere"):  # the folder given inside the current one, or not
        monkeypatch.chdir(cwd)
        plan = plan_jobs([tmp_path / "in"], tmp_path / "out")
        assert [job.dst for job in plan.jobs] == [tmp_path / "out" / "in" / n for n in ("again.png", "linked.png")]
        assert not plan.failures
    monkeypatch.chdir(tmp_path)
    plan = plan_jobs(["in/linked.png", "./in/linked.png", "in"], tmp_path / "out")  # the same file, named twice
    assert sorted(job.dst.name for job in plan.jobs) == ["again.png", "linked.png"] and not plan.failures


def test_plan_refuses_overwriting_inputs_and_skips_existing_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "in" / "a.png")
    _photo(tmp_path / "in" / "b.gif")
    (tmp_path / "in" / "film.avi").write_bytes(b"not really")
    _photo(tmp_path / "out" / "in" / "a.png")  # an earlier output
    plan = plan_jobs(["in", "missing.jpg", "in/*.nomatch"], "out", InferenceOptions())
    assert [job.dst for job in plan.skipped] == [Path("out/in/a.png")]
    assert {(job.dst, job.fmt) for job in plan.jobs} == {(Path("out/in/b.png"), "PNG"), (Path("out/in/film.mp4"), VIDEO)}
    assert [job.src for job in plan.video_jobs] == [Path("in/film.avi")]
    assert {(str(f.path), f.cause) for f in plan.failures} == {("missing.jpg", "no such file or folder"),
                                                               ("in/*.nomatch", "no files match")}
    # Writing into the input folder itself: the output would be the input.
    plan = plan_jobs(["in/a.png"], ".", InferenceOptions(format="png"), overwrite=True)
    assert not plan.jobs and "would overwrite an input" in plan.failures[0].cause


def test_colorize_jobs_writes_each_photo_and_fails_one_at_a_time(tmp_path):
    good = [_photo(tmp_path / "in" / f"{i}.png") for i in range(5)]
    broken = _photo(tmp_path / "in" / "narrow.png", w=13)  # the model fails on it
    bad = tmp_path / "in" / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    plan = plan_jobs([tmp_path / "in"], tmp_path / "out")
    outcomes = {o.job.src.name: o for o in colorize_jobs(FlatColour(), plan.jobs)}
    assert set(outcomes) == {p.name for p in [*good, broken, bad]}
    assert all(outcomes[p.name].ok for p in good)
    assert "colorization failed (RuntimeError: the model broke)" == outcomes["narrow.png"].cause
    assert not outcomes["bad.png"].ok and not outcomes["bad.png"].job.dst.exists()
    out = np.asarray(Image.open(outcomes["0.png"].job.dst))
    assert out.shape == (24, 40, 3) and (out[..., 0].astype(int) - out[..., 2]).mean() > 5  # a*b* > 0: warm
    assert not list((tmp_path / "out").rglob(".*"))  # no temporary file left behind


def test_a_folder_of_jpegs_loads_neither_every_pillow_plugin_nor_the_film_pipeline(tmp_path):
    """Start-up a short run pays for nothing it does not use: looking up a suffix used to import
    all of Pillow's ~40 format plugins, and the video step PyAV's pipeline, with no video there."""
    import subprocess
    import sys
    import textwrap

    for name in ("a.jpg", "b.jpeg"):
        _photo(tmp_path / "in" / name)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from types import SimpleNamespace
        from test_batch import FlatColour
        from dlnet.apps.commands.colorize import Tally, process
        from dlnet.infer.batch import plan_jobs
        plan = plan_jobs([{str(tmp_path / "in")!r}], {str(tmp_path / "out")!r})
        tally = Tally()
        process(plan.jobs, FlatColour(), SimpleNamespace(side_by_side=False), tally, lambda: None)
        assert tally.done == 2, tally
        plugins = sorted(m for m in sys.modules if m.startswith("PIL.") and m.endswith("ImagePlugin"))
        print(plugins, "dlnet.infer.video" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['PIL.BmpImagePlugin', 'PIL.GifImagePlugin', 'PIL.JpegImagePlugin', " \
                          "'PIL.PngImagePlugin', 'PIL.PpmImagePlugin'] False"
    assert sorted(p.name for p in (tmp_path / "out" / "in").iterdir()) == ["a.jpg", "b.jpeg"]
