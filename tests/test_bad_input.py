"""Bad and unusual inputs through ``dlnet colorize``: the corpus of 40+ kinds in bad_inputs.py.

Each file gives either a correct output or exactly one stderr line naming it and the cause; the
batch carries on; the exit code is 1 when anything failed; no input file ever changes. The corpus
runs three times: in the inputs' own formats, then written as JPEG and as WebP (some inputs are
too wide or carry too much EXIF for those: they fail, in one line).
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _tiny_model import tiny_model_file
from bad_inputs import RGB, corpus as make_corpus, png

from dlnet.apps.cli import main
from dlnet.apps.commands import one_line

SUFFIX = {"jpeg": ".jpg", "webp": ".webp"}


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return str(tiny_model_file(tmp_path_factory.mktemp("model")))


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """The corpus under ``in/``, with two symbolic links back to ``in`` itself (issue 10, defect 5)."""
    monkeypatch.chdir(tmp_path)
    expected = make_corpus()
    for name, kind in expected.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(kind.blob)
    for link in ("loop1", "loop2"):
        (tmp_path / "in" / link).symlink_to(".", target_is_directory=True)
    return tmp_path, expected


def _output_for(out: Path, name: str, fmt: str | None) -> Path:
    path = out / "in" / name
    if fmt:
        return path if path.suffix == SUFFIX[fmt] else path.with_suffix(SUFFIX[fmt])
    return path if path.suffix in (".png", ".jpg", ".webp", ".tif") else path.with_suffix(".png")


def _run_corpus(expected: dict, weights: str, capsys, fmt: str | None, paths: str = "in") -> tuple[str, dict]:
    """Colorize the corpus into ``out-<fmt>``; check the summary and that each bad file has
    exactly one line naming it. Returns stderr and the expected outputs of the good files."""
    out = f"out-{fmt or 'native'}"
    (Path(out) / "in").mkdir(parents=True)
    (Path(out) / "in" / "blocked").write_text("a file where the output folder should be")
    args = ["colorize", paths, "-o", out, "--model", weights, "--size", "64", "--batch-size", "4"]
    code = main(args + (["--format", fmt] if fmt else []))
    captured = capsys.readouterr()
    good = {name: kind.size for name, kind in expected.items()
            if kind.size is not None and fmt not in kind.unwritable_as and not name.startswith("blocked/")}
    n_bad = len(expected) - len(good)
    err_lines = captured.err.strip().split("\n")
    assert code == 1
    assert captured.out.strip().splitlines()[-1] == f"{len(good)} colorized, 0 skipped, {n_bad} failed"
    assert len(err_lines) == n_bad and "Traceback" not in captured.err
    for name in expected:
        mine = [line for line in err_lines if line.startswith(one_line(str(Path("in") / name)) + ": ")]
        if name in good:
            assert not mine, mine
            with Image.open(_output_for(Path(out), name, fmt)) as img:
                assert img.size == good[name], name
        else:
            assert len(mine) == 1, f"{name}: expected one error line, got {mine}"
            assert len(mine[0].split(": ", 1)[1]) > 5  # a cause is given
    assert not [p for p in Path(out).rglob(".*")], "a temporary file was left behind"
    return captured.err, good


def test_corpus_each_file_gives_output_or_one_clear_line(corpus, weights, capsys):
    root, expected = corpus
    assert len(expected) >= 40
    out = root / "out-native"
    before = _hashes(root / "in")

    err, good = _run_corpus(expected, weights, capsys, None)
    assert _hashes(root / "in") == before, "an input file changed"
    # Details that the outputs keep.
    with Image.open(out / "in" / "alpha.png") as img:
        assert img.mode == "RGBA" and np.array(img)[..., 3].min() == 0
    with Image.open(out / "in" / "with-icc.png") as img:
        assert img.info.get("icc_profile")
    with Image.open(out / "in" / "exif-rotated.jpg") as img:  # turned upright once, not twice
        assert img.getexif().get(0x0112, 1) == 1
    with Image.open(out / "in" / "cmyk.jpg") as img:
        assert img.mode == "RGB" and not img.info.get("icc_profile")
    assert "decompression bomb" in err and "empty file" in err and "in/two\\nlines.jpg: " in err

    # A second run, by a recursive glob (over the links back to in/), skips what exists and
    # still reports the bad files.
    assert main(["colorize", "in/**", "-o", "out-native", "--model", weights, "--size", "64"]) == 1
    summary = capsys.readouterr().out.strip()
    assert summary.endswith(f"0 colorized, {len(good)} skipped, {len(expected) - len(good)} failed")


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_corpus_written_as_another_format(corpus, weights, capsys, fmt):
    root, expected = corpus
    before = _hashes(root / "in")
    err, good = _run_corpus(expected, weights, capsys, fmt)
    assert _hashes(root / "in") == before
    for name, kind in expected.items():
        if fmt in kind.unwritable_as:
            line = err.split(one_line(f"in/{name}") + ": ", 1)[1].split("\n")[0]
            assert f"cannot write as {fmt.upper()}" in line or "too long" in line, line


def test_outputs_that_would_collide_get_distinct_names(tmp_path, monkeypatch, weights):
    monkeypatch.chdir(tmp_path)
    Path("in").mkdir()
    Image.fromarray(RGB).save("in/palette.png")
    Image.fromarray(RGB).convert("P").save("in/palette.gif")
    assert main(["colorize", "in", "-o", "out", "--model", weights, "--size", "64"]) == 0
    assert sorted(p.name for p in Path("out/in").iterdir()) == ["palette.gif.png", "palette.png"]


def test_output_equal_to_input_is_refused(corpus, weights, capsys):
    root, _ = corpus
    target = root / "in" / "my old photo.jpg"
    before = target.read_bytes()
    # Input in/x.jpg with -o . would be written to ./in/x.jpg: the input itself.
    code = main(["colorize", "in/my old photo.jpg", "in/café ünï 写真.png", "-o", ".", "--weights", weights,
                 "--size", "64", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and target.read_bytes() == before
    assert err.count("would overwrite an input") == 2


def test_output_format_option_and_missing_paths(corpus, weights, capsys):
    code = main(["colorize", "in/photo.webp", "in/nothing-here.png", "in/*.nomatch", "-o", "o2",
                 "--format", "jpeg", "--weights", weights, "--size", "64"])
    captured = capsys.readouterr()
    assert code == 1
    assert Path("o2/in/photo.jpg").is_file()
    assert "in/nothing-here.png: no such file" in captured.err and "in/*.nomatch: no files match" in captured.err
    assert captured.out.strip().endswith("1 colorized, 0 skipped, 2 failed")


def test_side_by_side_and_rebalance_options(corpus, weights, capsys):
    code = main(["colorize", "in/photo.webp", "in/alpha.png", "-o", "o4", "--weights", weights, "--size", "64",
                 "--side-by-side", "--rebalance"])
    assert code == 0, capsys.readouterr().err
    for name in ("photo.webp", "alpha.png"):
        with Image.open(Path("o4/in") / name) as img:
            assert img.size == (128, 48) and img.mode == "RGB"  # grey | colour, no alpha


def test_unwritable_output_folder(corpus, weights, capsys):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions (the blocked-folder case covers write failures)")
    out = Path("ro")
    out.mkdir()
    out.chmod(0o500)
    try:
        code = main(["colorize", "in/bitmap.bmp", "-o", "ro", "--weights", weights, "--size", "64"])
    finally:
        out.chmod(0o700)
    assert code == 1 and "in/bitmap.bmp: cannot write" in capsys.readouterr().err


def test_usage_errors_exit_2(corpus, weights, capsys):
    Path("a-file").write_text("x")
    assert main(["colorize", "in/bitmap.bmp", "-o", "a-file", "--weights", weights]) == 2
    assert main(["colorize", "in/bitmap.bmp", "-o", "o3", "--weights", "no-such-model"]) == 2
    assert main(["colorize", "in/bitmap.bmp", "-o", "o3", "--weights", weights, "--batch-size", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("dlnet colorize: error: ") for line in err)


def test_real_console_script(corpus, weights):
    script = shutil.which("dlnet") or str(Path(sys.executable).with_name("dlnet"))
    root, _ = corpus
    proc = subprocess.run([script, "colorize", "in/zero-bytes.jpg", "in/my old photo.jpg", "-o", "out",
                           "--weights", weights, "--size", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip() == "in/zero-bytes.jpg: empty file (0 bytes)"
    assert proc.stdout.strip() == "1 colorized, 0 skipped, 1 failed"
    assert (root / "out" / "in" / "my old photo.jpg").is_file()
