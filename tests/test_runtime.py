"""Which runtime runs the model (dlnet.infer.runtime): the rule's decisions, computed by hand."""

from __future__ import annotations

import pytest

from dlnet.infer import runtime
from dlnet.infer.runtime import FILM_ASPECT, ONNX_S_PER_MPX, ONNX_START_S, TORCH_BF16_S_PER_MPX, TORCH_START_S
from dlnet.infer.runtime import RuntimeChoiceError, Work, choose_runtime


def _break_even_frames(size: int = 128) -> float:
    """Frames at working size ``size`` whose faster model calls repay PyTorch's longer start-up."""
    per_frame = (ONNX_S_PER_MPX - TORCH_BF16_S_PER_MPX) * size * size / 1e6 * FILM_ASPECT
    return (TORCH_START_S - ONNX_START_S) / per_frame


def test_a_film_is_weighed_by_its_frames_at_the_working_size():
    assert Work(photos=0, videos=1, frames=1000, size=128).megapixels() == pytest.approx(1000 * 128 * 128 / 1e6 * 9 / 16)
    n = _break_even_frames()
    assert 1500 < n < 2000  # a bit over a minute of film at 24 frames/s
    assert choose_runtime(work=Work(photos=0, videos=1, frames=int(n * 0.9)), bf16=True) == "onnx"
    assert choose_runtime(work=Work(photos=0, videos=1, frames=int(n * 1.1)), bf16=True) == "torch"
    assert choose_runtime(work=Work(photos=0, videos=1, frames=720), bf16=True) == "onnx"  # 30 s: start fast
    assert choose_runtime(work=Work(photos=0, videos=1, frames=130_000), bf16=True) == "torch"  # a feature film


def test_without_native_bf16_onnxruntime_runs_films_and_photos_of_any_length():
    for work in (Work(photos=0, videos=1, frames=130_000), Work(photos=100_000), Work(photos=None)):
        assert choose_runtime(work=work, bf16=False) == "onnx"


def test_photos_and_frames_add_up():
    photos = int(_break_even_frames() * FILM_ASPECT * 0.6)  # 60 % of the work in photos, 60 % in frames
    assert choose_runtime(work=Work(photos=photos), bf16=True) == "onnx"
    assert choose_runtime(work=Work(photos=0, videos=1, frames=int(_break_even_frames() * 0.6)), bf16=True) == "onnx"
    assert choose_runtime(work=Work(photos=photos, videos=1, frames=int(_break_even_frames() * 0.6)),
                          bf16=True) == "torch"


def test_what_needs_pytorch_gets_it_and_a_stated_runtime_is_kept(monkeypatch):
    short_film = Work(photos=0, videos=1, frames=100)
    assert choose_runtime(work=short_film, device="cuda", bf16=False) == "torch"
    assert choose_runtime(work=short_film, compile=True, bf16=False) == "torch"
    assert choose_runtime(work=short_film, runtime="torch", bf16=False) == "torch"
    assert choose_runtime(work=Work(photos=None), runtime="onnx", bf16=True) == "onnx"
    assert choose_runtime("m.onnx", work=Work(photos=None), bf16=True) == "onnx"
    with pytest.raises(RuntimeChoiceError, match="m.onnx"):
        choose_runtime("m.onnx", runtime="torch")
    with pytest.raises(RuntimeChoiceError, match="runtime must be one of"):
        choose_runtime(runtime="tensorflow")
    monkeypatch.setattr(runtime.importlib.util, "find_spec", lambda name: None)  # onnxruntime not installed
    assert choose_runtime(work=short_film, bf16=False) == "torch"


def test_the_command_counts_films_frames_only_until_pytorch_pays(tmp_path, monkeypatch):
    from dlnet.apps.cli import main
    from dlnet.infer import video
    from dlnet.model.weights import WeightsError

    for name in ("a.mp4", "b.mkv", "c.avi"):
        (tmp_path / name).write_bytes(b"not read: film_frames is replaced")
    probed, loaded = [], []
    monkeypatch.setattr(video, "film_frames", lambda path: probed.append(path.name) or 100_000)  # a feature film each

    def load(model, work, **kwargs):
        loaded.append(work)
        raise WeightsError("stop here")

    monkeypatch.setattr(runtime, "load_colorizer", load)
    for bf16, want_probed, want_frames in ((True, 1, 100_000), (False, 0, 0)):
        probed.clear()
        monkeypatch.setattr(runtime, "cpu_bf16", lambda: bf16)
        assert main(["colorize", str(tmp_path), "-o", str(tmp_path / "out")]) == 2  # (the load's error)
        assert len(probed) == want_probed and loaded[-1].frames == want_frames and loaded[-1].videos == 3
