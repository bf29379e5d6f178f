"""The server's runtimes: onnxruntime at once, then PyTorch where it is faster per photo; or either one alone."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import mean_chroma, tinted_model_file

from dlnet.apps.serve import ServeSettings, create_app
from dlnet.infer import runtime
from dlnet.infer.colorizer import Colorizer


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tinted_model_file(tmp_path_factory.mktemp("model") / "tinted.safetensors")


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DLNET_CACHE", str(tmp_path_factory.getbasetemp() / "onnx-cache"))


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _colorize(client: TestClient) -> np.ndarray:
    r = client.post("/v1/colorize", files={"file": ("grey.png", _photo(), "image/png")})
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))


def _runtime_when(client: TestClient, runtime: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.get("/healthz").json()
        if info["runtime"] == runtime or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def test_default_answers_with_onnxruntime_then_hands_over_to_pytorch_on_a_bf16_cpu(model_file, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: True)  # PyTorch's bf16 is faster per photo there
    client = TestClient(create_app(settings=ServeSettings(weights=str(model_file), device="cpu")))
    first = client.get("/healthz").json()
    assert first["encoder"] == "efficientnet_lite0"
    via_first = _colorize(client)  # answered by whichever runtime holds it now
    info = _runtime_when(client, "torch")
    assert info["runtime"] == "torch" and info["device"] == "cpu"
    via_torch = _colorize(client)
    assert mean_chroma(via_torch) > 10  # the tinted model's colour
    assert np.abs(via_first.astype(int) - via_torch.astype(int)).max() <= 2  # bf16 vs fp32


def test_default_stays_on_onnxruntime_where_pytorch_is_not_faster(model_file, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16", lambda: False)  # fp32 both: as fast, and 1 GB less
    client = TestClient(create_app(settings=ServeSettings(weights=str(model_file), device="cpu")))
    assert client.get("/healthz").json()["runtime"] == "onnx"
    assert mean_chroma(_colorize(client)) > 10
    time.sleep(0.5)
    assert client.get("/healthz").json()["runtime"] == "onnx"


def test_onnx_runtime_stays_on_onnxruntime(model_file):
    settings = ServeSettings(weights=str(model_file), runtime="onnx")
    client = TestClient(create_app(settings=settings))
    assert client.get("/healthz").json()["runtime"] == "onnx"
    assert mean_chroma(_colorize(client)) > 10
    time.sleep(0.5)
    assert client.get("/healthz").json()["runtime"] == "onnx"


def test_torch_runtime_and_a_given_colorizer_serve_with_pytorch(model_file):
    for app in (create_app(settings=ServeSettings(weights=str(model_file), runtime="torch")),
                create_app(Colorizer.from_pretrained(str(model_file), "cpu"), ServeSettings())):
        assert TestClient(app).get("/healthz").json()["runtime"] == "torch"


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="runtime"):
        ServeSettings(runtime="tensorflow")


def test_the_server_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, dlnet.apps.serve, dlnet.apps.serve_runtime; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
