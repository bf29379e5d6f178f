"""The README's two commands are the ones CI and users run: keep them true."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlnet.apps.cli import main
from dlnet.model.weights import available_models

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)\n(.*?)```", text, re.S).group(1)
    return [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
    colorize, test = readme_commands()
    assert "dlnet colorize" in colorize and "pytest" in test
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()


@pytest.mark.skipif(not available_models(), reason="no shipped model in this checkout")
def test_readme_colorize_command_works(tmp_path):
    colorize = readme_commands()[0]
    args = shlex.split(colorize.split("&&")[-1])
    assert args[0].endswith("dlnet")
    args = [a if not a.startswith("examples/") else str(ROOT / a) for a in args[1:]]
    out = tmp_path / "out"
    i = args.index("-o")
    args[i + 1] = str(out)
    assert main(args) == 0
    result = next(out.rglob("*.*"))
    rgb = np.asarray(Image.open(result).convert("RGB")).astype(float)
    chroma = np.abs(rgb - rgb.mean(axis=2, keepdims=True)).mean()
    assert result.stem.startswith("astronaut") and chroma > 2.0  # grey in, colour out
