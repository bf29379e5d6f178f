"""Colour hints through the server (issue 28): the ``hints`` and ``hint_method`` form fields, the
one-line 422 of each bad hint, /healthz saying whether the model takes hints, and the recent
uploads kept decoded so that a request can name a photo by id (kept, evicted, unknown)."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from serve_helpers import tinted_model_file

from dlnet import DLNet, ModelConfig, save_model
from dlnet.apps.serve import ServeSettings, create_app
from dlnet.apps.serve_photos import PhotoCache
from dlnet.color.fullres import srgb_to_lab
from dlnet.infer.colorizer import Colorizer
from dlnet.io.hints import MAX_HINTS
from dlnet.io.imageio import Photo

GREEN = "#5a8a50"  # L* 53, as the photo's dark half: in gamut there
TINT = np.array([30.0, -20.0])  # the tinted model's own a*b* (serve_helpers)


def _ab(rgb) -> np.ndarray:
    return srgb_to_lab(np.asarray(rgb, np.float64))[..., 1:]


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    model = tinted_model_file(tmp_path_factory.mktemp("hints") / "tinted.safetensors")
    return Colorizer.from_pretrained(str(model), device="cpu", precision="fp32", size=64)


def make_client(colorizer, **settings) -> TestClient:
    return TestClient(create_app(colorizer, ServeSettings(**{"default_size": 64, **settings})),
                      raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(colorizer):
    return make_client(colorizer)


def two_regions(w: int = 96, h: int = 64) -> bytes:
    """A grey PNG: darker left half (L* 53), light right half (propagation keeps a hint on its own side)."""
    grey = np.full((h, w), 230, np.uint8)
    grey[:, : w // 2] = 126
    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, format="PNG")
    return buf.getvalue()


def post(client, data: bytes | None = None, **form):
    files = None if data is None else {"file": ("photo.png", data, "image/png")}
    return client.post("/v1/colorize", files=files, data={k: str(v) for k, v in form.items()})


def one_line_422(resp) -> str:
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail and len(detail) < 400
    return detail


@pytest.mark.parametrize("method", [None, "propagate"])
def test_a_hint_colours_the_photo_where_it_was_put(client, method):
    hints = json.dumps([{"x": 20, "y": 30, "color": GREEN, "radius": 4}])
    form = {"hints": hints} if method is None else {"hints": hints, "hint_method": method}
    resp, auto = post(client, two_regions(), **form), post(client, two_regions())
    assert resp.status_code == 200, resp.text
    out, auto = (np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")) for r in (resp, auto))
    assert out.shape == (64, 96, 3)
    green = _ab(Image.new("RGB", (1, 1), GREEN).getpixel((0, 0)))
    assert np.linalg.norm(_ab(out[30, 20]) - green) < 3  # the hint's colour at the hint (8-bit rounding)
    assert np.linalg.norm(_ab(auto[30, 20]) - TINT) < 3  # where the model alone gave its own
    near, across = (np.linalg.norm(_ab(out[30, x]) - _ab(auto[30, x])) for x in (20, 80))
    assert across < 0.5 * near  # the light half, across the edge, changes less
    assert resp.headers["server-timing"].startswith("colorize;dur=")


BAD = {
    "not JSON": ('[{"x": 1, "y": ', "not JSON (line 1"),
    "not a list": ('{"x": 1, "y": 2, "color": "red"}', "hints must be a list"),
    "bad colour": ('[{"x": 1, "y": 2, "color": "red"}, {"x": 1, "y": 2, "color": "reddish"}]',
                   "hint 2: color 'reddish' is not a colour"),
    "NaN": ('[{"x": NaN, "y": 2, "color": "red"}]', "hint 1: x must be a finite number"),
    "infinite": ('[{"x": 1, "y": Infinity, "color": "red"}]', "hint 1: y must be a finite number"),
    "unknown key": ('[{"x": 1, "y": 2, "colour": "red"}]', "hint 1: needs keys x, y, color"),
    "too many": (json.dumps([{"x": 1, "y": 2, "color": "red"}] * (MAX_HINTS + 1)), f"at most {MAX_HINTS}"),
    "outside": ('[{"x": 1, "y": 2, "color": "red"}, {"x": 500, "y": 2, "color": "red"}]',
                "Hint 2 at (500, 2) is outside the 96x64 photo"),
    "long colour": (json.dumps([{"x": 1, "y": 2, "color": "z" * 100_000}]), "hint 1: color 'zzz"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_hint_is_a_422_naming_it(client, case):
    hints, words = BAD[case]
    assert words in one_line_422(post(client, two_regions(), hints=hints))


def test_learned_on_a_model_without_hint_inputs_is_a_422_before_any_work(client):
    detail = one_line_422(post(client, two_regions(), hints='[{"x": 1, "y": 2, "color": "red"}]', hint_method="learned"))
    assert "learned needs a model with hint inputs" in detail
    assert "hint_method" in one_line_422(post(client, two_regions(), hint_method="magic"))


def test_hints_on_an_upload_that_is_no_photo_are_a_422(client):
    resp = client.post("/v1/colorize", files={"file": ("film.mp4", b"not a photo, perhaps a film", "video/mp4")},
                       data={"hints": '[{"x": 1, "y": 2, "color": "red"}]'})
    assert "Hints apply to photos only" in one_line_422(resp)


@pytest.fixture(scope="module")
def hint_model_file(tmp_path_factory):
    """A small hint model whose hint weights are not zero (as if trained), so hints change its output."""
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet", decoder_channels=(16, 16, 8, 8),
                              hints=True, pretrained=False)).eval()
    with torch.no_grad():
        stem = model.encoder.trunk.conv_stem.weight
        stem[:, 1:] = 0.5 * torch.randn_like(stem[:, 1:])
    return save_model(model, tmp_path_factory.mktemp("hint-model") / "hint-model.safetensors")


def test_healthz_says_whether_the_model_takes_hints(client, hint_model_file):
    assert client.get("/healthz").json()["hints"] == {
        "learned": False, "methods": ["propagate"], "default_method": "propagate", "max_hints": MAX_HINTS,
        "photo_cache_bytes": ServeSettings().photo_cache_bytes}
    learner = make_client(Colorizer.from_pretrained(str(hint_model_file), device="cpu", precision="fp32"))
    info = learner.get("/healthz").json()["hints"]
    assert info["learned"] and info["methods"] == ["learned", "propagate"] and info["default_method"] == "propagate"
    hints = '[{"x": 20, "y": 30, "color": "#a03020", "radius": 8}]'
    plain, hinted = (np.asarray(Image.open(io.BytesIO(post(learner, two_regions(), **form).content)), int)
                     for form in ({}, {"hints": hints}))
    assert np.abs(hinted - plain).max() > 5  # learned by default: the hints reached the network


def test_a_photo_sent_once_is_named_by_its_id_and_not_decoded_again(colorizer, monkeypatch):
    import dlnet.apps.serve_photos as serve_photos

    decoded = []
    read = serve_photos.read_image
    monkeypatch.setattr(serve_photos, "read_image", lambda *a, **k: decoded.append(1) or read(*a, **k))
    client = make_client(colorizer)
    data = two_regions()
    first = post(client, data)
    photo_id = first.headers["x-photo-id"]
    assert photo_id == hashlib.sha256(data).hexdigest()
    hints = json.dumps([{"x": 20, "y": 30, "color": GREEN}])
    by_id, by_file = post(client, photo=photo_id, hints=hints), post(client, data, hints=hints)
    assert by_id.status_code == 200 and by_id.content == by_file.content
    assert by_id.headers["x-photo-id"] == photo_id and len(decoded) == 1  # the same bytes again: not decoded either


def test_the_least_recently_used_photo_goes_and_naming_it_then_says_to_send_it_again(colorizer):
    client = make_client(colorizer, photo_cache_mb=2 * 64 * 96 * (3 + 4) / 1e6)  # room for two photos and their L*
    photos = [two_regions(), two_regions(96, 63), two_regions(96, 62)]
    ids = [post(client, p).headers["x-photo-id"] for p in photos[:2]]
    assert post(client, photo=ids[0]).status_code == 200  # now the first is the more recently used
    post(client, photos[2])  # the third pushes out the second
    assert post(client, photo=ids[0]).status_code == 200
    gone = post(client, photo=ids[1])
    assert gone.status_code == 404 and "send the file again" in gone.json()["detail"]
    unknown = post(client, photo="0" * 64)
    assert unknown.status_code == 404 and "no longer held" in unknown.json()["detail"]
    assert "photo" in one_line_422(post(client, photo="../../etc/passwd"))
    assert "'file'" in one_line_422(post(client, hints="[]"))  # neither file nor id


def test_no_cache_means_no_id(colorizer):
    resp = post(make_client(colorizer, photo_cache_mb=0), two_regions())
    assert resp.status_code == 200 and "x-photo-id" not in resp.headers


def test_photo_cache_counts_pixels_and_keeps_the_recently_used():
    cache = PhotoCache(max_bytes=3 * 10 * 10 * 3)
    photos = {k: Photo(np.zeros((10, 10, 3), np.uint8)) for k in "abcd"}
    for k in "abc":
        assert cache.put(k, photos[k])
    assert cache.get("a") is photos["a"]
    cache.put("d", photos["d"])
    assert [k in cache for k in "abcd"] == [True, False, True, True] and len(cache) == 3
    assert not cache.put("big", Photo(np.zeros((20, 20, 3), np.uint8)))  # larger than the budget
    assert cache.put("a", photos["a"]) and len(cache) == 3  # the same photo again: counted once


def test_openapi_shows_the_hint_fields(client):
    spec = client.get("/openapi.json").json()
    ref = spec["paths"]["/v1/colorize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    props = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    assert {"hints", "hint_method", "photo", "file"} <= set(props)
    assert "color" in props["hints"]["description"]
