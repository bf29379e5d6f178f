"""The web app (dlnet.apps.serve) through FastAPI's TestClient: results, limits, errors, page, docs."""

from __future__ import annotations

import io
import re
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import mean_chroma, tinted_model_file

from dlnet.apps.cli import main as cli_main
from dlnet.infer.colorizer import Colorizer
from dlnet.infer.options import InferenceOptions
from dlnet.color.rebalance import RebalanceConfig
from dlnet.apps.serve import ServeSettings, create_app


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tinted_model_file(tmp_path_factory.mktemp("serve") / "tinted.safetensors")


@pytest.fixture(scope="module")
def colorizer(model_file):
    return Colorizer.from_pretrained(str(model_file), device="cpu", precision="fp32", size=64)


def make_client(colorizer, **settings) -> TestClient:
    app = create_app(colorizer, ServeSettings(**{"default_size": 64, **settings}))
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(colorizer):
    return make_client(colorizer)


class Delegate:
    """A stand-in Colorizer passing calls to a real one; tests override ``colorize``."""

    def __init__(self, inner: Colorizer) -> None:
        self.inner = inner
        self.model, self.device, self.precision, self.options = (
            inner.model, inner.device, inner.precision, inner.options)

    def colorize(self, image, options=None):
        return self.inner.colorize(image, options)


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def grey_photo(w: int = 48, h: int = 40) -> Image.Image:
    ramp = np.linspace(0, 255, w * h, dtype=np.float32).reshape(h, w)
    return Image.fromarray(ramp.astype(np.uint8), "L")


def post(client, data: bytes, name: str = "photo.png", **form):
    return client.post("/v1/colorize", files={"file": (name, data, "image/png")},
                       data={k: str(v) for k, v in form.items()})


def assert_json_error(resp, status: int) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and detail and "Traceback" not in detail
    return detail


def test_colorize_returns_colour_png_of_input_size(client):
    resp = post(client, encode(grey_photo(48, 40)))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(resp.content))
    assert out.format == "PNG" and out.mode == "RGB" and out.size == (48, 40)
    assert mean_chroma(np.asarray(out)) > 10  # the tinted model paints a clear colour


@pytest.mark.parametrize("fmt, pil_format", [("jpeg", "JPEG"), ("webp", "WEBP"), ("png", "PNG")])
def test_output_format_is_the_one_asked_for(client, fmt, pil_format):
    resp = post(client, encode(grey_photo(), "JPEG"), name="x.jpg", format=fmt)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == f"image/{fmt}"
    assert Image.open(io.BytesIO(resp.content)).format == pil_format


def test_options_reach_the_colorizer_as_arguments(colorizer):
    calls = []

    class Spy(Delegate):
        def colorize(self, image, options=None):
            calls.append(options)
            return super().colorize(image, options)

    client = make_client(Spy(colorizer), rebalance=True)
    assert post(client, encode(grey_photo()), size=96, rebalance="false", format="webp").status_code == 200
    assert post(client, encode(grey_photo())).status_code == 200
    assert calls[0] == InferenceOptions(size=96, rebalance=None, format="webp", max_megapixels=50)
    assert calls[1] == InferenceOptions(size=64, rebalance=RebalanceConfig(), format="png", max_megapixels=50)


def test_upload_over_the_size_limit_is_413(colorizer):
    client = make_client(colorizer, max_upload_mb=0.01)
    big = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (100, 100), np.uint8)))
    assert len(big) > 10_000
    assert "too large" in assert_json_error(post(client, big), 413)

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        yield big
        yield b"\r\n--b--\r\n"

    resp = client.post("/v1/colorize", content=chunks(),
                       headers={"content-type": "multipart/form-data; boundary=b"})
    assert "too large" in assert_json_error(resp, 413)


def test_image_over_the_pixel_limit_is_413(colorizer):
    client = make_client(colorizer, max_megapixels=0.001)
    assert "over the limit" in assert_json_error(post(client, encode(grey_photo(48, 40))), 413)


def test_text_file_named_as_image_is_415(client):
    resp = client.post("/v1/colorize", files={"file": ("photo.jpg", b"hello, not a photo\n", "image/jpeg")})
    assert_json_error(resp, 415)


def test_truncated_jpeg_is_400(client):
    jpeg = encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    assert_json_error(post(client, jpeg[: len(jpeg) // 2], name="cut.jpg"), 400)


@pytest.mark.parametrize("form", [{"size": 5}, {"size": "big"}, {"format": "gif"}, {"rebalance": "maybe"}])
def test_bad_options_are_422_with_a_sentence(client, form):
    assert assert_json_error(post(client, encode(grey_photo()), **form), 422).startswith("Invalid request")


def test_missing_file_is_422_naming_the_field(client):
    assert "'file'" in assert_json_error(client.post("/v1/colorize", data={"size": "64"}), 422)


def test_queue_full_is_503_with_retry_after(colorizer):
    started, release = threading.Event(), threading.Event()

    class Blocking(Delegate):
        def colorize(self, image, options=None):
            started.set()
            assert release.wait(30)
            return super().colorize(image, options)

    client = make_client(Blocking(colorizer), workers=1, queue_size=0, retry_after_s=3)
    first = {}
    worker = threading.Thread(target=lambda: first.update(r=post(client, encode(grey_photo()))))
    worker.start()
    try:
        assert started.wait(30)
        busy = post(client, encode(grey_photo()))
        assert_json_error(busy, 503)
        assert busy.headers["retry-after"] == "3"
    finally:
        release.set()
        worker.join(30)
    assert first["r"].status_code == 200
    assert post(client, encode(grey_photo())).status_code == 200  # the slot was given back


def test_unexpected_error_is_500_json_and_logged(colorizer, caplog):
    class Broken(Delegate):
        def colorize(self, image, options=None):
            raise RuntimeError("secret internal state")

    detail = assert_json_error(post(make_client(Broken(colorizer)), encode(grey_photo())), 500)
    assert "secret" not in detail
    assert "secret internal state" in caplog.text


def test_unknown_route_is_json_404(client):
    assert_json_error(client.get("/nope"), 404)


def test_healthz_names_model_and_device(colorizer, model_file):
    client = make_client(colorizer, weights=str(model_file))
    info = client.get("/healthz").json()
    assert info["status"] == "ok" and info["model"] == "tinted" and info["device"] == "cpu"
    assert info["limits"]["max_upload_bytes"] == ServeSettings().max_upload_bytes


def test_the_pages_limits_are_the_options_own(client):
    """The page's colour slider takes its maximum from /healthz (it stopped at 2; the limit is 4)."""
    from dlnet.apps.serve import STATIC_DIR
    from dlnet.infer.options import MAX_SATURATION

    assert client.get("/healthz").json()["limits"]["max_saturation"] == MAX_SATURATION
    assert "limits.max_saturation" in (STATIC_DIR / "app.js").read_text()
    resp = post(client, encode(grey_photo()), saturation=str(MAX_SATURATION + 0.5))
    assert resp.status_code == 422 and "saturation" in resp.json()["detail"]


def test_openapi_documents_the_colorize_form(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/colorize"]["post"]
    schema_ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    props = spec["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]["properties"]
    assert {"file", "size", "rebalance", "format"} <= set(props)
    assert "/healthz" in spec["paths"]


def test_docs_load_their_assets_from_this_server(client):
    html = client.get("/docs").text
    srcs = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)""", html) + re.findall(r"url:\s*'([^']+)'", html)
    assert srcs and not [s for s in srcs if "//" in s]
    for src in srcs:
        assert client.get(src).status_code == 200, src


def test_page_is_served_and_references_only_local_assets(client):
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in resp.headers["content-security-policy"]
    assert client.head("/").status_code == 200
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", resp.text)
    assert any(r.endswith(".js") for r in refs) and any(r.endswith(".css") for r in refs)
    for ref in refs:
        assert "//" not in ref and not ref.startswith("data:"), ref
        assert client.get("/" + ref).status_code == 200, ref
    for asset in ("static/app.js", "static/style.css"):
        text = client.get("/" + asset).text
        assert not re.search(r"https?://", text), f"{asset} refers to another server"


def test_no_user_path_reaches_the_file_system(client):
    for path in ("/static/../serve.py", "/static/%2e%2e/serve.py", "/static/..%2fserve.py"):
        assert client.get(path).status_code == 404, path
    resp = client.post("/v1/colorize", files={"file": ("../../etc/passwd", encode(grey_photo()), "image/png")})
    assert resp.status_code == 200 and "passwd" not in resp.headers.get("content-disposition", "")


def test_cli_rejects_bad_settings_in_one_line(tmp_path, capsys):
    assert cli_main(["serve", "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert cli_main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("dlnet serve: error:") for line in err)
