"""Golden test: the shipped default model on a fixed photo gives the recorded colours.

The expected values live in ``tests/golden_default_model.json`` (one small file), recorded with the
default model's SHA-256. When the shipped default model changes on purpose (retrained, replaced),
regenerate them and commit the file with the model:

    .venv/bin/python tests/test_golden.py --update

What is compared: ``examples/astronaut-bw.jpg`` colorized on the CPU in fp32 at the default working
size, no rebalancing, through ``Colorizer.colorize_photos`` (the path of the CLI and the server);
the output's mean a* and b* in each cell of an 8 x 8 grid, within 0.5 (a*b* units, out of about
+-100: 8-bit rounding and float summation order move them by < 0.1), and its mean chroma, within 0.2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden_default_model.json")
PHOTO = ROOT / "examples" / "astronaut-bw.jpg"
COMMAND = ".venv/bin/python tests/test_golden.py --update"
CELL_TOLERANCE, CHROMA_TOLERANCE = 0.5, 0.2


def measure() -> dict:
    """The default model's colours on the fixed photo (see the module docstring)."""
    from dlnet.color.lab import rgb_to_lab
    from dlnet.infer.colorizer import Colorizer
    from dlnet.io.imageio import read_image
    from dlnet.infer.options import InferenceOptions
    from dlnet.model.weights import DEFAULT_MODEL, WEIGHTS_DIR, sha256_file

    colorizer = Colorizer.from_pretrained(None, device="cpu", precision="fp32",
                                          options=InferenceOptions(rebalance=None))
    out = colorizer.colorize_photos([read_image(PHOTO)])[0]
    rgb = torch.from_numpy(out.rgb).permute(2, 0, 1)[None].float() / 255
    ab = rgb_to_lab(rgb)[:, 1:]
    grid = torch.nn.functional.adaptive_avg_pool2d(ab, 8)[0].permute(1, 2, 0)  # (8, 8, 2)
    return {
        "model": DEFAULT_MODEL,
        "sha256": sha256_file(WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors"),
        "photo": str(PHOTO.relative_to(ROOT)),
        "size": colorizer.options.size,
        "mean_chroma": round(float(ab.pow(2).sum(1).sqrt().mean()), 3),
        "ab_grid": np.round(grid.numpy().astype(float), 2).tolist(),
        "regenerate": COMMAND,
    }


def test_default_model_gives_the_recorded_colours():
    from dlnet.model.weights import DEFAULT_MODEL, available_models

    if DEFAULT_MODEL not in available_models():
        pytest.skip("the default model is not shipped in this checkout")
    expected = json.loads(GOLDEN.read_text())
    got = measure()
    assert (got["model"], got["sha256"]) == (expected["model"], expected["sha256"]), (
        f"the shipped default model changed ({got['model']} {got['sha256'][:12]}, golden values are for "
        f"{expected['model']} {expected['sha256'][:12]}): if that is intended, run `{COMMAND}`")
    assert got["size"] == expected["size"]
    diff = np.abs(np.array(got["ab_grid"]) - np.array(expected["ab_grid"]))
    assert diff.max() <= CELL_TOLERANCE, f"a*b* of a grid cell moved by {diff.max():.3f}"
    assert abs(got["mean_chroma"] - expected["mean_chroma"]) <= CHROMA_TOLERANCE


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: {COMMAND}")
    values = measure()
    rows = ",\n  ".join(json.dumps(row) for row in values.pop("ab_grid"))  # one grid row a line
    GOLDEN.write_text(json.dumps(values, indent=1)[:-2] + f',\n "ab_grid": [\n  {rows}\n ]\n}}\n')
    print(f"wrote {GOLDEN}")
