"""Videos: ``dlnet colorize`` and ``Colorizer.colorize_video`` on clips made here with PyAV.

Clips are tiny (96x64, 24 frames) and the model is tiny or a few lines of arithmetic, so the
whole file runs in seconds; what is checked is what a film must keep (frame count, size, frame
times, audio packets), what must not happen (flicker, colour dragged across a cut, debris left
by a failure or Ctrl-C) and that bad files cost one line each.
"""

from __future__ import annotations

import io
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from _tiny_model import tiny_model_file

from dlnet.apps.cli import main
from dlnet.infer.colorizer import Colorizer
from dlnet.infer.temporal import TemporalSmoother, flicker
from dlnet.infer.video import VideoError, colorize_video, read_frames

W, H, N = 96, 64, 24
SCENE = np.asarray(Image.fromarray(data.astronaut()).convert("L").resize((2 * W, H)))  # wide: room to pan
OTHER = np.asarray(Image.fromarray(data.camera()).resize((W, H)))
_SAMPLE_TYPES = {"flt": np.float32, "fltp": np.float32, "s16": np.int16, "s16p": np.int16}


def still(i: int) -> np.ndarray:
    """A still scene as old film shows it: exposure off by several percent each frame, grain."""
    rng = np.random.default_rng(i)
    return np.clip(SCENE[:, :W] * (1 + 0.05 * rng.standard_normal()) + rng.normal(0, 6, (H, W)), 0, 255).astype(np.uint8)


def pan(i: int) -> np.ndarray:
    return np.ascontiguousarray(SCENE[:, 3 * i: 3 * i + W])


def cut(i: int) -> np.ndarray:
    return pan(i) if i < N // 2 else OTHER


def write_clip(path: Path, render=still, n: int = N, rate=24, size=(W, H), codec="libx264", pix_fmt="yuv420p",
               audio: tuple[str, int] | None = None, options: dict | None = None) -> Path:
    """Encode ``render(i)`` (grey uint8 frames) into ``path``, with a 440 Hz tone as ``audio``
    ``(codec, sample rate)`` if given."""
    with av.open(str(path), "w", options=options or {}) as out:
        video = out.add_stream(codec, rate=Fraction(rate))
        video.width, video.height = size
        video.pix_fmt = pix_fmt
        sound = out.add_stream(audio[0], rate=audio[1], layout="mono") if audio else None
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(render(i)[:size[1], :size[0]]), format="gray")
            out.mux(video.encode(frame.reformat(format=pix_fmt)))
        out.mux(video.encode())
        if sound is not None:
            cc, rate_a = sound.codec_context, audio[1]
            step, total = cc.frame_size or 1024, int(rate_a * n / float(rate))
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(total + step) / rate_a)
            kind = _SAMPLE_TYPES[cc.format.name]
            for start in range(0, total, step):
                chunk = tone[start:start + step] * (32767 if kind is np.int16 else 1)
                frame = av.AudioFrame.from_ndarray(chunk[None].astype(kind), format=cc.format.name, layout="mono")
                frame.sample_rate, frame.pts = rate_a, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode())
    return path


def describe(path: Path) -> dict:
    """What a film must keep: frame count, size, frame times (s), audio packets and their times."""
    with av.open(str(path)) as c:
        frames = [(round(float(f.time), 3), (f.width, f.height)) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        audio = [p for p in c.demux(audio=0) if p.dts is not None] if c.streams.audio else []
        return {"frames": len(frames), "size": frames[-1][1], "times": [t for t, _ in frames],
                "audio": [bytes(p) for p in audio], "audio_times": [float(p.pts * p.time_base) for p in audio]}


class LumaColour(torch.nn.Module):
    """a*b* that follow L* closely: exposure changes and grain make them flicker frame to frame."""

    def forward(self, l):
        return torch.cat([(l - 50) * 0.8, 30 * torch.sin(l / 6)], 1)


class MeanColour(torch.nn.Module):
    """One colour per frame from its mean L*: a* = 40 for bright frames, -40 for dark ones."""

    def forward(self, l):
        a = torch.where(l.mean((1, 2, 3), keepdim=True) > 50, 40.0, -40.0).expand_as(l)
        return torch.cat([a, torch.zeros_like(l)], 1)


def _colorizer(model=None) -> Colorizer:
    return Colorizer(model or LumaColour(), "cpu", size=64, precision="fp32", batch_size=4)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: the pipeline's own threads keep both cores busy, and OpenMP regions
    of two threads stall for milliseconds each when the cores are shared (10x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_model_file(tmp_path_factory.mktemp("video-model"))


def test_cli_mixed_batch_keeps_every_film_and_reports_bad_ones(tmp_path, model_file, capsys):
    src = tmp_path / "in"
    (src / "reel").mkdir(parents=True)
    clips = {
        "still.mp4": write_clip(src / "still.mp4"),
        "reel/pan.webm": write_clip(src / "reel" / "pan.webm", pan, codec="libvpx-vp9"),
        "cut.avi": write_clip(src / "cut.avi", cut, codec="mpeg4"),
        "tone.mov": write_clip(src / "tone.mov", audio=("aac", 16000)),
        "odd.mkv": write_clip(src / "odd.mkv", pan, rate=Fraction(30000, 1001), size=(97, 55), pix_fmt="yuv444p"),
        "film.mpg": write_clip(src / "film.mpg", cut, rate=25, codec="mpeg2video", audio=("mp2", 32000)),
        "pcm.avi": write_clip(src / "pcm.avi", codec="mjpeg", pix_fmt="yuvj420p", audio=("pcm_s16le", 8000)),
    }
    whole = write_clip(tmp_path / "whole.mp4", n=48, options={"movflags": "+faststart"}).read_bytes()
    (src / "truncated.mp4").write_bytes(whole[: len(whole) * 2 // 3])
    (src / "notes.mp4").write_text("not a film")
    Image.fromarray(SCENE).save(src / "photo.png")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}

    out = tmp_path / "out"
    code = main(["colorize", str(src), "-o", str(out), "--weights", str(model_file), "--size", "64"])
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert code == 1 and "8 colorized, 0 skipped, 2 failed" in captured.out
    assert len(errors) == 2 and "Traceback" not in captured.err
    assert any(line.startswith(f"{src / 'truncated.mp4'}: ") and "truncated" in line for line in errors)
    assert any(line.startswith(f"{src / 'notes.mp4'}: ") and "not a video" in line for line in errors)
    assert (out / "in" / "photo.png").exists()
    for rel, clip in clips.items():
        dst = out / "in" / Path(rel).with_suffix(".mkv" if rel == "pcm.avi" else ".mp4")  # MP4 holds no PCM
        got, want = describe(dst), describe(clip)
        assert got["frames"] == want["frames"] == N, rel
        assert got["size"] == want["size"], rel
        assert np.allclose(got["times"], want["times"], atol=0.0015), rel
        assert got["audio"] == want["audio"], rel  # the same packets: copied, not re-encoded
        assert np.allclose(got["audio_times"], want["audio_times"], atol=0.0015), rel
    assert len(describe(out / "in" / "tone.mp4")["audio"]) > 5
    assert not list(out.rglob(".*")), "temporary files left behind"
    assert before == {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}, "an input changed"


def test_default_smoothing_at_least_halves_flicker(tmp_path):
    clip = write_clip(tmp_path / "still.mp4")
    colorizer = _colorizer()
    off = colorizer.colorize_video(clip, tmp_path / "off.mp4", temporal=0)
    on = colorizer.colorize_video(clip, tmp_path / "on.mp4")
    flicker_off, flicker_on = flicker(read_frames(off.path)), flicker(read_frames(on.path))
    assert flicker_off > 1.0, "the test clip should flicker without smoothing"
    assert flicker_on <= 0.5 * flicker_off, (flicker_on, flicker_off)
    assert on.cuts == 0, "exposure flicker is not a scene cut"


def test_scene_cut_restarts_the_colour(tmp_path):
    dark_then_bright = write_clip(tmp_path / "cut.mp4", lambda i: cut(i) // 2 if i < N // 2 else 255 - OTHER // 3)
    result = _colorizer(MeanColour()).colorize_video(dark_then_bright, tmp_path / "out.mp4")
    assert result.cuts == 1
    with av.open(str(result.path)) as c:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)]
    redness = [float((f[..., 0] - f[..., 1]).mean()) for f in frames]
    assert redness[N // 2 - 1] < -5 and redness[N // 2] > 5  # blue-green, then red at once: no blend


def test_pan_is_not_a_cut_and_colour_follows_motion():
    frames = [pan(i)[None].astype(np.float32) / 2.55 for i in range(N)]
    ab = [LumaColour()(torch.from_numpy(l)[None])[0].numpy() for l in frames]
    lag = {}
    for motion in (6.0, float("inf")):  # inf: no motion gate, a plain moving average
        smoother = TemporalSmoother(motion=motion)
        lag[motion] = np.mean([np.abs(smoother(a, l) - a).mean() for a, l in zip(ab, frames)])
        assert smoother.cuts == 0
    assert lag[6.0] < 0.5 * lag[float("inf")]


def test_cut_between_scenes_of_equal_brightness_is_found():
    other = OTHER.astype(np.float32) / 2.55
    other += pan(N // 2 - 1).mean() / 2.55 - other.mean()  # the same mean L*: only the picture changes
    smoother = TemporalSmoother()
    for i in range(N):
        l = (pan(i).astype(np.float32) / 2.55 if i < N // 2 else other)[None]
        smoother(np.zeros((2, H, W), np.float32), l)
    assert smoother.cuts == 1


def test_file_objects_limits_and_mkv_for_pcm(tmp_path):
    colorizer = _colorizer()
    clip = write_clip(tmp_path / "pcm.avi", audio=("pcm_s16le", 8000)).read_bytes()
    buf = io.BytesIO()
    result = colorizer.colorize_video(io.BytesIO(clip), buf)
    assert result.path is None and result.container == "matroska" and result.frames == N
    with av.open(io.BytesIO(buf.getvalue())) as c:
        assert c.streams.audio[0].codec_context.name == "pcm_s16le"
    with pytest.raises(VideoError, match="over the limit of 0.5 s") as e:
        colorizer.colorize_video(io.BytesIO(clip), io.BytesIO(), max_seconds=0.5)
    assert e.value.kind == "too_large"
    class Pipe(io.BytesIO):  # written without seeking back: Matroska without its duration
        def seekable(self):
            return False

    with av.open(unseekable := Pipe(), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(N):
            out.mux(video.encode(av.VideoFrame.from_ndarray(still(i), format="gray").reformat(format="yuv420p")))
        out.mux(video.encode())
    with pytest.raises(VideoError, match="longer than the limit of 0.5 s"):  # found while decoding
        colorizer.colorize_video(io.BytesIO(unseekable.getvalue()), io.BytesIO(), max_seconds=0.5)
    with pytest.raises(VideoError, match="96x64 frames are over the limit of 0.005 MP"):
        colorizer.colorize_video(io.BytesIO(clip), io.BytesIO(), colorizer.options.replace(max_megapixels=0.005))


def test_interrupt_stops_cleanly_and_leaves_nothing(tmp_path):
    clip = write_clip(tmp_path / "still.mp4")

    class Interrupted(LumaColour):
        calls = 0

        def forward(self, l):
            Interrupted.calls += 1
            if Interrupted.calls == 2:  # (24 frames: two model calls of 16 and 8)
                raise KeyboardInterrupt
            return super().forward(l)

    threads = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        _colorizer(Interrupted()).colorize_video(clip, tmp_path / "out" / "still.mp4")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "still.mp4"]
    assert threading.active_count() == threads


def test_cli_crf_and_preset_set_the_encoder(tmp_path, model_file, capsys):
    clip = write_clip(tmp_path / "pan.mp4", tiled, size=(192, 128))
    sizes = {}
    for name, flags in {"default": [], "small": ["--crf", "40", "--preset", "veryfast"]}.items():
        out = tmp_path / name
        assert main(["colorize", str(clip), "-o", str(out), "--weights", str(model_file), "--size", "64", *flags]) == 0
        sizes[name] = (out / "pan.mp4").stat().st_size
        with av.open(str(out / "pan.mp4")) as c:  # x264 writes its settings into the stream
            settings = bytes(next(c.demux(video=0))).decode("latin-1")
        assert ("crf=40.0" if flags else "crf=16.0") in settings
        assert ("subme=2" if flags else "subme=0") in settings  # veryfast's subpixel search, ultrafast's
        assert "deblock=1:0:0" in settings  # on for every preset (ultrafast's own is off): less flicker
    assert sizes["small"] < sizes["default"] / 2
    assert main(["colorize", str(clip), "-o", str(tmp_path / "o"), "--crf", "52"]) == 2
    assert "--crf must lie in 0..51" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # (argparse's one line and exit 2 for a choice that does not exist)
        main(["colorize", str(clip), "-o", str(tmp_path / "o"), "--preset", "instant"])
    assert e.value.code == 2 and "invalid choice: 'instant'" in capsys.readouterr().err


def test_cli_rejects_temporal_out_of_range(tmp_path, capsys):
    assert main(["colorize", str(write_clip(tmp_path / "a.mp4")), "-o", str(tmp_path / "o"), "--temporal", "1"]) == 2
    assert "--temporal must lie in 0..1" in capsys.readouterr().err


def test_server_takes_a_short_video_and_refuses_a_long_one(tmp_path):
    from fastapi.testclient import TestClient

    from dlnet.apps.serve import ServeSettings, create_app

    clip = write_clip(tmp_path / "film.mp4", audio=("aac", 16000)).read_bytes()
    for limit, status in ((30.0, 200), (0.5, 413), (0.0, 415)):
        app = create_app(_colorizer(), ServeSettings(default_size=64, max_video_seconds=limit))
        resp = TestClient(app).post("/v1/colorize", files={"file": ("film.mp4", clip, "video/mp4")})
        assert resp.status_code == status, resp.text
        if status == 200:
            assert resp.headers["content-type"] == "video/mp4"
            got, want = tmp_path / "got.mp4", tmp_path / "film.mp4"
            got.write_bytes(resp.content)
            assert describe(got)["frames"] == N and describe(got)["audio"] == describe(want)["audio"]
        else:
            detail = resp.json()["detail"]
            assert ("over the limit of 0.5 s" if status == 413 else "not an image") in detail.lower(), detail


def test_each_frame_keeps_its_own_lightness(tmp_path):
    from dlnet.color.fullres import lightness

    clip = write_clip(tmp_path / "still.mp4")
    result = _colorizer().colorize_video(clip, tmp_path / "out.mp4", crf=0)  # x264 lossless: L* as recombined
    for before, after in zip(read_frames(clip), read_frames(result.path)):
        diff = np.abs(lightness(after) - lightness(before))
        assert np.median(diff) < 0.5 and diff.mean() < 1.5  # 8-bit rounding; 4:2:0 chroma at colour edges


def tiled(i: int) -> np.ndarray:
    """A pan twice as wide and high (room for larger frames)."""
    return np.tile(pan(i), (2, 2))


def test_audio_that_no_container_holds_is_reencoded_as_aac(tmp_path, model_file, capsys):
    """Issue 31, defect 4: IMA-ADPCM in AVI or mu-law in MOV failed the whole film."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_clip(src / "adpcm.avi", codec="mpeg4", audio=("adpcm_ima_wav", 8000))
    write_clip(src / "mulaw.mov", audio=("pcm_mulaw", 8000))
    code = main(["colorize", str(src), "-o", str(out), "--weights", str(model_file), "--size", "64"])
    captured = capsys.readouterr()
    assert code == 0 and "2 colorized, 0 skipped, 0 failed" in captured.out
    notes = captured.err.strip().splitlines()
    assert len(notes) == 2 and all(line.endswith("re-encoded as AAC: neither MP4 nor Matroska can hold it as it is")
                                   for line in notes), notes
    for name in ("adpcm", "mulaw"):
        with av.open(str(out / "in" / f"{name}.mp4")) as c:
            assert c.streams.audio[0].codec_context.name == "aac"
            seconds = sum(f.samples for f in c.decode(audio=0)) / 8000
        assert abs(seconds - N / 24) < 0.15, (name, seconds)  # all of the sound, in time with the frames


def test_a_film_killed_mid_way_leaves_no_partial_file_after_the_next_run(tmp_path, model_file):
    """Issue 31, defect 7: SIGKILL (or SIGTERM) mid-film left a hidden partial file for good."""
    import signal
    import subprocess
    import sys
    import time

    clip = write_clip(tmp_path / "long.mp4", n=1500)
    out = tmp_path / "out"
    command = ["colorize", str(clip), "-o", str(out), "--weights", str(model_file), "--size", "64"]
    cli = "import sys; from dlnet.apps.cli import main; sys.exit(main(sys.argv[1:]))"
    child = subprocess.Popen([sys.executable, "-c", cli, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = []
    deadline = time.monotonic() + 120
    while not partial and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        partial = [p for p in out.rglob(".*") if p.is_file() and p.stat().st_size > 0]
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert partial and partial[0].exists(), "the film should have been killed while being written"
    assert main(command) == 0  # the user runs it again
    assert describe(out / "long.mp4")["frames"] == 1500
    assert not [p.name for p in out.rglob(".*")], "a partial file was left behind"


def test_side_by_side_films_are_grey_then_colour(tmp_path, model_file):
    """Issue 31, defect 10: --side-by-side was silently ignored for films."""
    clip = write_clip(tmp_path / "pan.mp4", tiled, size=(192, 128))
    assert main(["colorize", str(clip), "-o", str(tmp_path / "out"), "--side-by-side", "--weights", str(model_file),
                 "--size", "64"]) == 0
    assert describe(tmp_path / "out" / "pan.mp4")["size"] == (384, 128)


@pytest.mark.parametrize("how", ["flag", "sidecar"])
def test_a_film_given_hints_is_refused_in_one_line_and_the_photos_go_on(tmp_path, model_file, capsys, how):
    """Hints were silently ignored for films (a --hint for the run, or film.hints.json beside it)."""
    (tmp_path / "in").mkdir()
    clip = write_clip(tmp_path / "in" / "film.mp4")
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(tmp_path / "in" / "photo.png")
    hint = ["--hint", "1,1,red"] if how == "flag" else []
    if how == "sidecar":
        (tmp_path / "in" / "film.hints.json").write_text('[{"x": 1, "y": 1, "color": "red"}]')
    assert main(["colorize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--weights", str(model_file), *hint]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == f"{clip}: colour hints apply to photos, and a film takes none: colorize it without " \
                          f"--hint, --hints or its sidecar"
    assert out.strip().endswith("1 colorized, 0 skipped, 1 failed")
    assert [p.name for p in (tmp_path / "out").rglob("*.*")] == ["photo.png"]


@pytest.mark.parametrize("size", [(192, 128), (97, 55)])  # the 4:2:0 path; an odd size, by RGB (4:4:4)
def test_side_by_side_frames(tmp_path, size):
    from dlnet.color.fullres import lightness

    w = size[0]
    clip = write_clip(tmp_path / "pan.mp4", tiled, size=size, pix_fmt="yuv420p" if w % 2 == 0 else "yuv444p")
    result = _colorizer().colorize_video(clip, tmp_path / "out.mp4", side_by_side=True, crf=0)
    assert result.frames_420 == (N if w % 2 == 0 else 0)
    for before, after in zip(read_frames(clip), read_frames(result.path)):
        assert after.shape == (size[1], 2 * w, 3)
        grey, colour = after[:, :w].astype(np.int16), after[:, w:].astype(np.int16)
        assert np.abs(grey - grey.mean(axis=2, keepdims=True)).max() <= 2  # grey: R = G = B
        assert np.abs(colour - colour.mean(axis=2, keepdims=True)).mean() > 5  # in colour
        assert np.abs(lightness(grey.astype(np.uint8)) - lightness(before)).mean() < 1.0  # the film's own grey


def test_a_film_runs_on_onnxruntime_as_on_pytorch(tmp_path, model_file, monkeypatch):
    from dlnet.infer.onnxrun import OnnxColorizer
    from dlnet.infer.options import InferenceOptions

    monkeypatch.setenv("DLNET_CACHE", str(tmp_path / "cache"))
    options = InferenceOptions(size=64)
    onnx = OnnxColorizer.from_pretrained(str(model_file), batch_size=4, options=options, threads=1)
    pytorch = Colorizer.from_pretrained(str(model_file), "cpu", precision="fp32", batch_size=4, options=options)
    clip = write_clip(tmp_path / "pan.mp4", tiled, size=(192, 128))
    films = [c.colorize_video(clip, tmp_path / f"{i}.mp4", crf=0) for i, c in enumerate((onnx, pytorch))]
    assert [f.frames_420 for f in films] == [N, N]
    for a, b in zip(*(read_frames(f.path) for f in films)):
        assert np.abs(a.astype(np.int16) - b).max() <= 2


def test_a_short_film_is_colorized_by_the_command_without_torch(tmp_path, model_file, monkeypatch):
    import subprocess
    import sys

    from dlnet.infer.onnxrun import cached_onnx

    monkeypatch.setenv("DLNET_CACHE", str(tmp_path / "cache"))
    cached_onnx(model_file)  # the export needs torch; runs after it do not
    clip = write_clip(tmp_path / "film.mp4", pan)
    code = ("import sys; from dlnet.apps.cli import main; rc = main(sys.argv[1:]); "
            "print('torch' in sys.modules); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "colorize", str(clip), "-o", str(tmp_path / "out"),
                          "--model", str(model_file), "--size", "64"], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "False", out.stdout + out.stderr  # a few seconds of film: onnxruntime
    assert describe(tmp_path / "out" / "film.mp4")["frames"] == N


def test_a_server_on_onnxruntime_colorizes_videos_there(tmp_path, model_file, monkeypatch):
    from fastapi.testclient import TestClient

    from dlnet.apps.serve import ServeSettings, create_app

    monkeypatch.setenv("DLNET_CACHE", str(tmp_path / "cache"))
    client = TestClient(create_app(settings=ServeSettings(weights=str(model_file), runtime="onnx", default_size=64)))
    resp = client.post("/v1/colorize", files={"file": ("film.mp4", write_clip(tmp_path / "film.mp4").read_bytes(),
                                                       "video/mp4")})
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4", resp.text
    (tmp_path / "got.mp4").write_bytes(resp.content)
    assert describe(tmp_path / "got.mp4")["frames"] == N
    assert client.get("/healthz").json()["runtime"] == "onnx"
