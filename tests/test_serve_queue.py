"""The server under load: photos beyond its workers wait in a queue and are answered in turn; only
past the queue's bound, or its timeout, is a request shed with 503 + Retry-After.

A slow stand-in model (no timings asserted: events and counts) on one event loop, as uvicorn runs it.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from dlnet.apps.serve import ServeSettings, create_app
from dlnet.infer.options import InferenceOptions


class SlowModel:
    """Colorizes (returns the photo) after ``release`` is set, or after ``delay_s``; records how
    many photos it worked on at once."""

    precision, device, model_saturation, options = "fp32", "cpu", 1.0, InferenceOptions()

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.release = delay_s, threading.Event()
        self.started = threading.Semaphore(0)
        self.lock, self.now, self.most, self.done = threading.Lock(), 0, 0, 0

    def colorize(self, photo, options=None):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        self.started.release()
        if self.delay_s:
            time.sleep(self.delay_s)
        else:
            assert self.release.wait(30)
        with self.lock:
            self.now -= 1
            self.done += 1
        return photo.to_image()


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _post(client: TestClient):
    return client.post("/v1/colorize", files={"file": ("p.png", _png(), "image/png")})


def test_fifty_concurrent_clients_all_get_their_photos_with_the_default_settings():
    """Before: capacity was workers + queue (17); the other 33 of 50 got 503 at once."""
    model = SlowModel(delay_s=0.02)
    settings = ServeSettings()
    assert settings.queue_size + settings.workers >= 50
    with TestClient(create_app(model, settings)) as client, ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda _: _post(client).status_code, range(50)))
    assert codes == [200] * 50
    assert model.most == settings.workers and model.done == 50


def test_past_the_queues_bound_requests_are_shed_at_once_and_the_queue_is_served():
    model = SlowModel()
    with TestClient(create_app(model, ServeSettings(workers=1, queue_size=2, retry_after_s=4))) as client, \
            ThreadPoolExecutor(3) as pool:
        queued = [pool.submit(_post, client) for _ in range(3)]  # one colorizing, two waiting
        deadline = time.monotonic() + 30
        while client.get("/healthz").json()["load"] != {"colorizing": 1, "waiting": 2}:
            assert time.monotonic() < deadline, client.get("/healthz").json()["load"]
            time.sleep(0.02)
        shed = _post(client)  # a fourth, past the bound
        assert shed.status_code == 503 and shed.headers["retry-after"] == "4", shed.text
        assert "2 photos are waiting already" in shed.json()["detail"]
        model.release.set()
        assert [f.result(timeout=30).status_code for f in queued] == [200, 200, 200]
    assert model.most == 1 and model.done >= 3


def test_a_photo_that_waits_longer_than_the_queue_timeout_gets_503():
    model = SlowModel()
    settings = ServeSettings(workers=1, queue_size=5, queue_timeout_s=0.3, retry_after_s=1)
    with TestClient(create_app(model, settings)) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, client)
        assert model.started.acquire(timeout=30)
        late = _post(client)
        assert late.status_code == 503 and "no worker was free for 0.3 s" in late.json()["detail"]
        model.release.set()
        assert first.result(timeout=30).status_code == 200
        assert _post(client).status_code == 200  # the worker was given back
