"""``dlnet colorize --ray`` (dlnet.infer.cluster) on a real local Ray instance of 2 CPUs.

One instance serves the module (starting one costs about 8 s); the photos are small. The plain
command's outputs are the reference: the cluster job must write the same files. Skipped only
where Ray is not installed (the dev extra installs it: ``dlnet[cluster]``).
"""

from __future__ import annotations

import csv
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import gradient_photo
from dlnet.apps.cli import main

PHOTOS = 100


def _grey(path: Path, seed: int, h: int = 40, w: int = 56) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    grey = Image.fromarray(gradient_photo(h, w, seed=seed)).convert("L")
    if path.suffix == ".png" and seed % 10 == 1:  # some with alpha, which outputs must keep
        grey = grey.convert("LA")
        grey.putalpha(Image.fromarray(np.full((h, w), 128 + seed % 100, np.uint8)))
    exif = Image.Exif()
    exif[0x010E] = f"scan {seed}"  # ImageDescription: metadata the outputs must keep
    grey.save(path, exif=exif)


def _rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ray_address():
    ray = pytest.importorskip("ray")
    # ray.init puts its own SIGTERM handler (sys.exit(15)) in this process and shutdown leaves it
    # there; a later test's training run would compose it with Lightning's and die mid-step.
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, ray_address):
    """100 small grey photos (JPEG and PNG, some with alpha, in sub-folders) and a corrupt one,
    colorized by the plain command and by ``--ray``: ``(root, ray exit code)``."""
    root = tmp_path_factory.mktemp("archive")
    for i in range(PHOTOS):
        _grey(root / "scans" / f"box{i % 3}" / f"{i:03d}.{'png' if i % 2 else 'jpg'}", seed=i)
    (root / "scans" / "box0" / "torn.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    # A photo with its own hints (a sidecar): they must reach the actor that colorizes it.
    (root / "scans" / "box1" / "001.hints.json").write_text('[{"x": 20, "y": 20, "color": "#c02010", "radius": 8}]')
    cwd = os.getcwd()
    os.chdir(root)
    try:
        # On the CPU both: a GPU machine's plain command would run PyTorch on it, the actors not.
        assert main(["colorize", "scans", "-o", "plain", "--device", "cpu"]) == 1  # the corrupt photo
        code = main(["colorize", "scans", "-o", "ray", "--device", "cpu", "--ray", ray_address])
    finally:
        os.chdir(cwd)
    return root, code


def test_ray_writes_the_plain_commands_outputs(archive):
    root, code = archive
    plain = sorted(p.relative_to(root / "plain") for p in (root / "plain").rglob("*.*") if p.suffix != ".csv")
    ours = sorted(p.relative_to(root / "ray") for p in (root / "ray").rglob("*.*") if p.suffix != ".csv")
    assert len(plain) == PHOTOS and ours == plain
    assert sum(Image.open(root / "ray" / rel).mode == "RGBA" for rel in plain) == PHOTOS // 10  # alpha kept
    assert all(Image.open(root / "ray" / rel).getexif().get(0x010E, "").startswith("scan") for rel in plain)
    hinted = np.asarray(Image.open(root / "ray" / "scans" / "box1" / "001.png").convert("RGB"), np.int16)[20, 20]
    assert hinted[0] - hinted[2] > 40, f"the sidecar's red hint did not reach the actor: {hinted}"
    for rel in plain:
        a, b = Image.open(root / "plain" / rel), Image.open(root / "ray" / rel)
        assert (a.format, a.mode, a.size, a.info.get("exif")) == (b.format, b.mode, b.size, b.info.get("exif")), rel
        diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
        # Photos batched differently differ by float rounding: one level at most in a PNG; a
        # JPEG encodes such a picture anew, which can move a few decoded pixels one more level.
        assert diff.max() <= (1 if a.format == "PNG" else 2) and diff.mean() < 0.01, f"{rel}: {diff.max()} levels"
    rows = _rows(root / "ray" / "dlnet-manifest.csv")
    assert [r for r in rows if r["status"] == "done"] and len(rows) == PHOTOS + 1
    assert all(Path(r["output"]).is_file() and float(r["seconds"]) >= 0 for r in rows if r["status"] == "done")


def test_a_corrupt_photo_fails_alone(archive):
    root, code = archive
    assert code == 1  # as the plain command: some photo failed
    failed = [r for r in _rows(root / "ray" / "dlnet-manifest.csv") if r["status"] != "done"]
    assert len(failed) == 1 and failed[0]["input"].endswith("torn.jpg") and failed[0]["status"] == "failed"
    assert "cannot decode" in failed[0]["error"] or "not an image" in failed[0]["error"]
    assert not list((root / "ray").rglob("torn.*"))


def test_a_rerun_does_no_work_twice_and_retries_the_failed(archive, ray_address, capsys):
    root, _ = archive
    before = {p: p.stat().st_mtime_ns for p in (root / "ray" / "scans").rglob("*.*")}
    lost = sorted(before)[:3]
    for p in lost:
        p.unlink()
    _grey(root / "scans" / "box0" / "torn.jpg", seed=7)  # mended since the first run
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["colorize", "scans", "-o", "ray", f"--ray={ray_address}"]) == 0
    finally:
        os.chdir(cwd)
    rows = {Path(r["input"]).name: r["status"] for r in _rows(root / "ray" / "dlnet-manifest.csv")}
    done = {name for name, status in rows.items() if status == "done"}
    assert done == {p.name for p in lost} | {"torn.jpg"}
    assert sum(status == "skipped" for status in rows.values()) == PHOTOS - 3
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p not in lost)
    assert f"4 colorized, {PHOTOS - 3} skipped, 0 failed" in capsys.readouterr().out


def _actor_pids() -> list[int]:
    """The colorizing actors' processes: Ray workers of this test's own instance (its raylet is
    a child of this process), named by Ray after the actor's class."""
    import psutil  # Ray's own copy (ray/thirdparty_files, on the path once ray is imported)

    return [p.pid for p in psutil.Process().children(recursive=True)
            if "MapBatches(_Colorize)" in " ".join(p.cmdline() if p.is_running() else [])]


def test_an_actor_killed_mid_job_loses_no_photo(tmp_path, ray_address):
    from dlnet.infer.cluster import colorize_files
    from dlnet.infer.options import InferenceOptions

    total = 240
    for i in range(total):
        _grey(tmp_path / "in" / f"{i:03d}.png", seed=i, h=96, w=128)
    result = []
    options = InferenceOptions(size=None)  # full size: slower, so that the job is still going
    job = threading.Thread(target=lambda: result.append(colorize_files(
        [tmp_path / "in"], tmp_path / "out", options, address=ray_address, batch_size=2, report=lambda line: None)))
    job.start()
    manifest, deadline, killed = tmp_path / "out" / "dlnet-manifest.csv", time.monotonic() + 240, None
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        if manifest.exists() and len(_rows(manifest)) >= 8 and _actor_pids():
            killed = _actor_pids()[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    job.join(timeout=300)
    assert killed is not None, "the job ended before an actor could be killed"
    summary = result[0]
    assert (summary.done, summary.failed) == (total, 0)
    rows = _rows(manifest)
    assert sorted(Path(r["input"]).name for r in rows) == [f"{i:03d}.png" for i in range(total)]
    for i in range(total):  # every output whole: decodable to its last row
        with Image.open(tmp_path / "out" / "in" / f"{i:03d}.png") as im:
            im.load()
            assert im.size == (128, 96)


def test_pyarrow_uris_work_like_paths(tmp_path, ray_address, monkeypatch, capsys):
    """file:// goes through pyarrow's file systems as s3:// and gs:// do (listing, staging, upload)."""
    for i in range(6):
        _grey(tmp_path / "in" / f"sub{i % 2}" / f"{i}.{'png' if i % 2 else 'jpg'}", seed=i)
    monkeypatch.chdir(tmp_path)
    argv = ["colorize", f"file://{tmp_path}/in", "-o", f"file://{tmp_path}/out", f"--ray={ray_address}"]
    assert main(argv) == 0
    outputs = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.*"))
    assert outputs == sorted(Path("in") / p.relative_to(tmp_path / "in") for p in (tmp_path / "in").rglob("*.*"))
    rows = _rows(tmp_path / "dlnet-manifest.csv")  # an object store cannot be appended to: here
    assert {r["status"] for r in rows} == {"done"} and all(r["output"].startswith("file://") for r in rows)
    assert main(argv) == 0 and "0 colorized, 6 skipped, 0 failed" in capsys.readouterr().out


def test_a_model_the_actors_cannot_load_is_one_line(tmp_path, ray_address, capsys):
    _grey(tmp_path / "a.jpg", seed=1)
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    model = str(tmp_path / "bad.safetensors")
    argv = ["colorize", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--model", model]
    assert main([*argv, f"--ray={ray_address}"]) == 2  # as the plain command: a usage error
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("dlnet colorize: error:")]
    assert len(errors) == 1 and "the model actors could not start:" in errors[0] and "bad.safetensors" in errors[0]


def test_a_bad_hints_sidecar_is_the_users_fault_as_without_ray(tmp_path, ray_address, capsys):
    _grey(tmp_path / "in" / "a.jpg", seed=1)
    (tmp_path / "in" / "a.hints.json").write_text('[{"x": 10, "y": ')  # cut short
    assert main(["colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), f"--ray={ray_address}"]) == 2
    (row,) = _rows(tmp_path / "out" / "dlnet-manifest.csv")
    assert row["status"] == "failed" and "a.hints.json" in row["error"]
    assert "0 colorized, 0 skipped, 1 failed" in capsys.readouterr().out


def test_actors_no_node_can_hold_are_refused_not_awaited_for_ever(tmp_path, ray_address):
    from dlnet.infer.cluster import ClusterError, colorize_files

    _grey(tmp_path / "a.jpg", seed=1)
    with pytest.raises(ClusterError, match=r"an actor needs 1 CPUs and 1 GPUs, and no node has that"):
        colorize_files([tmp_path / "a.jpg"], tmp_path / "out", num_gpus=1)  # this machine: no GPU for Ray


def test_without_ray_the_flag_names_the_extra(tmp_path, monkeypatch, capsys):
    _grey(tmp_path / "a.jpg", seed=1)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["colorize", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install "dlnet[cluster]"' in err


def test_a_photo_swallowed_by_the_flag_is_a_usage_error(tmp_path, capsys):
    _grey(tmp_path / "a.jpg", seed=1)
    assert main(["colorize", str(tmp_path / "a.jpg"), "--ray", str(tmp_path / "a.jpg")]) == 2
    assert "is not a Ray address" in capsys.readouterr().err


def test_films_are_colorized_on_ray_as_by_the_plain_command(tmp_path, ray_address, capsys):
    av = pytest.importorskip("av")
    from test_video import pan, write_clip

    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "reel.avi", pan, audio=("pcm_s16le", 16000))  # PCM: MP4 cannot hold it, so .mkv
    (tmp_path / "in" / "torn.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a film")
    _grey(tmp_path / "in" / "scan.jpg", seed=3)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        flags = ["--device", "cpu", "--size", "64"]
        assert main(["colorize", "in", "-o", "plain", *flags]) == 1  # the torn film
        assert main(["colorize", "in", "-o", "ray", *flags, "--ray", ray_address]) == 1
        rows = {Path(r["input"]).name: r for r in _rows(tmp_path / "ray" / "dlnet-manifest.csv")}
        assert rows["reel.avi"]["status"] == "done" and rows["reel.avi"]["output"].endswith("reel.mkv")
        assert rows["torn.mp4"]["status"] == "failed" and rows["torn.mp4"]["error"]
        assert rows["scan.jpg"]["status"] == "done"
        films = []
        for side in ("plain", "ray"):
            with av.open(str(tmp_path / side / "in" / "reel.mkv")) as c:
                films.append([f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)])
                assert [s.type for s in c.streams] == ["video", "audio"]  # the audio kept
        assert len(films[0]) == len(films[1]) > 0
        assert max(np.abs(a - b).max() for a, b in zip(*films)) <= 2  # the plain command's film
        assert not list((tmp_path / "ray").rglob("torn.*"))
        capsys.readouterr()
        assert main(["colorize", "in", "-o", "ray", *flags, "--ray", ray_address]) == 1  # the torn film, again
        rows = {Path(r["input"]).name: r["status"] for r in _rows(tmp_path / "ray" / "dlnet-manifest.csv")}
        assert rows == {"reel.avi": "skipped", "scan.jpg": "skipped", "torn.mp4": "failed"}  # no work twice
        assert "0 colorized, 2 skipped, 1 failed" in capsys.readouterr().out
    finally:
        os.chdir(cwd)


def test_films_and_hints_sidecars_in_buckets_as_in_folders(tmp_path, ray_address, monkeypatch, capsys):
    """A bucket's films are fetched to the actor, colorized and put back (.mkv where MP4 cannot
    hold the audio); its photos' sidecars bring their hints; an orphan sidecar is a failure."""
    av = pytest.importorskip("av")
    from test_video import pan, write_clip

    _grey(tmp_path / "in" / "scan.png", seed=4)
    write_clip(tmp_path / "in" / "reel.avi", pan, audio=("pcm_s16le", 16000))
    (tmp_path / "in" / "scan.hints.json").write_text('[{"x": 20, "y": 20, "color": "#c02010", "radius": 8}]')
    (tmp_path / "in" / "lost.hints.json").write_text("[]")  # beside no photo
    monkeypatch.chdir(tmp_path)  # where the manifest of a job writing to a bucket goes
    flags = ["--device", "cpu", "--size", "64"]
    local = main(["colorize", str(tmp_path / "in"), "-o", str(tmp_path / "plain"), *flags])
    argv = ["colorize", f"file://{tmp_path}/in", "-o", f"file://{tmp_path}/out", *flags, f"--ray={ray_address}"]
    assert main(argv) == local == 2  # the orphan sidecar: the user's fault, in both
    rows = {Path(r["input"]).name: r for r in _rows(tmp_path / "dlnet-manifest.csv")}
    assert rows["reel.avi"]["status"] == "done" and rows["reel.avi"]["output"] == f"file://{tmp_path}/out/in/reel.mkv"
    assert rows["lost.hints.json"]["status"] == "failed" and "beside no photo" in rows["lost.hints.json"]["error"]
    hinted = np.asarray(Image.open(tmp_path / "out" / "in" / "scan.png").convert("RGB"), np.int16)[20, 20]
    assert hinted[0] - hinted[2] > 40, f"the sidecar's red hint did not reach the actor: {hinted}"
    films = []
    for side in ("plain", "out"):
        with av.open(str(tmp_path / side / "in" / "reel.mkv")) as c:
            films.append([f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)])
            assert [s.type for s in c.streams] == ["video", "audio"]
    assert len(films[0]) == len(films[1]) > 0 and max(np.abs(a - b).max() for a, b in zip(*films)) <= 2
    assert not list((tmp_path / "out").rglob("*.mp4")) and not list((tmp_path / "out").rglob("lost*"))
    capsys.readouterr()
    assert main(argv) == 2 and "0 colorized, 2 skipped, 1 failed" in capsys.readouterr().out  # the .mkv seen


def test_local_jobs_stage_nothing(tmp_path, monkeypatch):
    """A job of local files needs no staging folder (Ray's actors call this per film and batch)."""
    from dlnet.infer import remote
    from dlnet.infer.batch import Job

    made = []
    monkeypatch.setattr(remote.tempfile, "TemporaryDirectory", lambda **kw: made.append(kw))
    job = Job(tmp_path / "a.jpg", tmp_path / "out" / "a.jpg", "jpeg", None)
    with remote.staged([job]) as staging:
        assert staging.folder is None and staging.jobs == {job: job} and not staging.failures
        assert staging.upload(job) == str(job.dst)
    assert made == []


def test_a_film_in_a_bucket_given_hints_is_refused_as_in_a_folder(tmp_path):
    pytest.importorskip("pyarrow")
    from dlnet import InferenceOptions
    from dlnet.infer.batch import FILM_HINTS
    from dlnet.infer.remote import plan_uris

    (tmp_path / "in").mkdir()
    for name in ("reel.mp4", "other.mp4", "scan.png"):
        (tmp_path / "in" / name).write_bytes(b"x")  # planning reads names only
    (tmp_path / "in" / "reel.hints.json").write_text('[{"x": 1, "y": 1, "color": "red"}]')
    plan = plan_uris([f"file://{tmp_path}/in"], f"file://{tmp_path}/out")
    assert [(Path(f.path).name, f.cause, f.kind) for f in plan.failures] == [("reel.mp4", FILM_HINTS, "hints")]
    assert sorted(Path(j.src).name for j in plan.jobs) == ["other.mp4", "scan.png"]
    plan = plan_uris([f"file://{tmp_path}/in"], f"file://{tmp_path}/out", InferenceOptions(hints=[{"x": 1, "y": 1, "color": "red"}]))
    assert sorted(Path(f.path).name for f in plan.failures) == ["other.mp4", "reel.mp4"]
