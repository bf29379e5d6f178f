"""The bad-input corpus (bad_inputs.py) against the server, in every output format it offers.

Every answer is a 2xx with the photo, or a 4xx (or 503) with ``{"detail": "<one sentence>"}``,
never a 5xx: the same kinds as on the command line, for the same reasons (an output format that
cannot hold a photo is a 422, a photo over the pixel limit a 413, a file that is no photo a 415,
a corrupt one a 400).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from _tiny_model import tiny_model_file
from bad_inputs import corpus

from dlnet.infer.colorizer import Colorizer
from dlnet.apps.serve import ServeSettings, create_app

SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
CORPUS = corpus()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    weights = tiny_model_file(tmp_path_factory.mktemp("model"))
    colorizer = Colorizer.from_pretrained(str(weights), device="cpu", precision="fp32")
    return TestClient(create_app(colorizer, ServeSettings(default_size=64)), raise_server_exceptions=False)


def _expected(name: str, fmt: str) -> tuple[int, ...]:
    """The statuses a kind may get as ``fmt``: 200, or the 4xx of its failure."""
    kind = CORPUS[name]
    if kind.size is None:
        return (400, 413, 415)
    name_too_long = len(os.fsencode(Path(name).with_suffix(SUFFIX[fmt]).name)) > 255  # (CLI only)
    return (422,) if fmt in kind.unwritable_as and not name_too_long else (200,)


def test_the_corpus_is_the_command_lines():
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_every_answer_is_a_photo_or_a_4xx_sentence(client, fmt):
    wrong = []
    for name, kind in CORPUS.items():
        resp = client.post("/v1/colorize", data={"format": fmt},
                           files={"file": (name, kind.blob, "application/octet-stream")})
        if resp.status_code not in _expected(name, fmt):
            wrong.append(f"{name!r}: {resp.status_code} {resp.text[:100]}")
        elif resp.status_code == 200:
            assert resp.headers["content-type"] == f"image/{fmt}"
            with Image.open(io.BytesIO(resp.content)) as img:
                assert img.size == kind.size, name
        else:
            detail = resp.json()["detail"]
            assert isinstance(detail, str) and detail.endswith(".") and "\n" not in detail, detail
            assert "Traceback" not in detail
    assert not wrong, "\n".join(wrong)
