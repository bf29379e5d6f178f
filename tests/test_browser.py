"""End to end in a real headless Chromium: open the page, upload a grey photo, get a colour one.

Runs uvicorn on 127.0.0.1 (a free port) in a thread and drives Debian's /usr/bin/chromium with
Playwright. Saves a screenshot to ``artifacts/browser/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serve_helpers import mean_chroma, tinted_model_file

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of a dlnet server with the tinted model, stopped after the module's tests."""
    import uvicorn

    from dlnet.infer.colorizer import Colorizer
    from dlnet.apps.serve import ServeSettings, create_app

    model = tinted_model_file(tmp_path_factory.mktemp("browser") / "tinted.safetensors")
    colorizer = Colorizer.from_pretrained(str(model), device="cpu", precision="fp32")
    app = create_app(colorizer, ServeSettings(weights=str(model)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        thread.join(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        yield context
        browser.close()


@pytest.fixture
def grey_astronaut(tmp_path) -> Path:
    from skimage import data
    from skimage.color import rgb2gray

    path = tmp_path / "astronaut-grey.png"
    Image.fromarray((rgb2gray(data.astronaut()) * 255).round().astype(np.uint8)).save(path)
    return path


def test_upload_colorizes_and_downloads(page, server, grey_astronaut, tmp_path):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server)
    _model_shown(page)
    page.set_input_files("#file", str(grey_astronaut))
    page.wait_for_selector("#download[aria-disabled='false']", timeout=60_000)
    _expect(page.locator("#after")).to_have_js_property("complete", True)
    assert page.locator("#after").evaluate("img => img.naturalWidth") > 0

    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "astronaut-grey-colour.png"
    result = Image.open(saved)
    assert result.size == (512, 512) and result.mode == "RGB"
    assert mean_chroma(np.asarray(result)) > 15, "the result should be clearly coloured"

    page.fill("#slider", "35")  # show more of the colour side in the screenshot
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "serve-page.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert page.is_hidden("#error")
    outside = [u for u in requests if not u.startswith((server, "blob:", "data:"))]
    assert not outside, f"the page reached outside this server: {outside}"


def test_api_docs_render_offline(page, server):
    page.goto(server + "docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # Swagger UI drew the operations
    assert "/v1/colorize" in page.inner_text(".swagger-ui")


def test_non_image_shows_a_clear_error(page, server, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo\n")
    page.goto(server)
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])", timeout=30_000)
    message = page.inner_text("#error")
    assert "image" in message.lower() and "Traceback" not in message
    page.screenshot(path=str(ARTIFACTS / "serve-error.png"))


def test_colour_amount_slider_at_zero_gives_grey(page, server, grey_astronaut, tmp_path):
    page.goto(server)
    _model_shown(page)
    assert page.input_value("#saturation") == "1"  # the model's own gain, from /healthz
    from dlnet.infer.options import MAX_SATURATION

    assert float(page.evaluate("document.getElementById('saturation').max")) == MAX_SATURATION  # (was 2)
    page.set_input_files("#file", str(grey_astronaut))
    page.wait_for_selector("#download[aria-disabled='false']", timeout=60_000)
    coloured_url = page.get_attribute("#download", "href")

    page.fill("#saturation", "0")  # fill() fires input and change: the page colorizes again
    _expect(page.locator("#download")).not_to_have_attribute("href", coloured_url, timeout=60_000)
    _expect(page.locator("#download")).to_have_attribute("aria-disabled", "false", timeout=60_000)
    assert page.inner_text("#saturation-value") == "0.00"
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "grey.png"
    download.value.save_as(saved)
    assert mean_chroma(np.asarray(Image.open(saved).convert("RGB"))) < 1.5, "gain 0 must give grey"


def _expect(locator):
    """Playwright's auto-waiting assertion. Not page.wait_for_function: its predicate is a string
    the page must eval, which the server's Content-Security-Policy (no 'unsafe-eval') refuses
    whenever the first check is false (a loaded CI machine)."""
    from playwright.sync_api import expect

    return expect(locator)


def _model_shown(page) -> None:
    """Wait until the page has shown the model's name (from /healthz)."""
    _expect(page.locator("#model")).to_have_text(re.compile(r"^Model"), timeout=30_000)


def _settled(page) -> None:
    """Wait until the download holds the result of what the page shows (points, options)."""
    page.wait_for_selector("#result[aria-busy='false'] #download[aria-disabled='false']", timeout=60_000)


def _download(page, path: Path) -> np.ndarray:
    with page.expect_download() as download:
        page.click("#download")
    download.value.save_as(path)
    return np.asarray(Image.open(path).convert("RGB"))


def _ab(rgb) -> np.ndarray:
    from dlnet.color.fullres import srgb_to_lab

    return srgb_to_lab(np.asarray(rgb, np.float64))[..., 1:]


def _colour_with_l_of(grey: int, ab=(-20.0, -30.0)) -> str:
    """A hex colour as light as the grey ``grey`` (so the photo's L* keeps it in gamut), with ``ab``."""
    from skimage.color import lab2rgb

    from dlnet.color.fullres import srgb_to_lab

    lab = [float(srgb_to_lab(np.array([grey] * 3, np.float64))[0]), *ab]
    rgb = np.round(lab2rgb(np.array([[lab]]))[0, 0] * 255).astype(int)
    return "#" + "".join(f"{v:02x}" for v in rgb)


def test_a_colour_point_colours_the_download_there(page, server, grey_astronaut, tmp_path):
    posts = []
    page.on("request", lambda r: posts.append(r.post_data_buffer or b"") if r.url.endswith("/v1/colorize") else None)
    page.goto(server)
    _model_shown(page)
    page.set_input_files("#file", str(grey_astronaut))
    _settled(page)
    plain = _download(page, tmp_path / "plain.png")

    page.click("#hint-mode")
    box = page.locator("#after").bounding_box()
    page.click("#points", position={"x": 150 * box["width"] / 512, "y": 380 * box["height"] / 512})
    dot = page.locator(".point")
    x, y = (round(float(dot.get_attribute(f"data-{c}"))) for c in "xy")
    assert abs(x - 150) <= 2 and abs(y - 380) <= 2  # pixels of the photo, whatever its size on screen
    picker = page.locator("#hint-list input[type=color]")
    assert picker.input_value() == "#{:02x}{:02x}{:02x}".format(*plain[y, x])  # preset: the model's colour there
    grey = np.asarray(Image.open(grey_astronaut))
    colour = _colour_with_l_of(int(grey[y, x]))
    picker.fill(colour)
    _settled(page)
    hinted = _download(page, tmp_path / "hinted.png")
    assert np.linalg.norm(_ab(hinted[y, x]) - _ab(Image.new("RGB", (1, 1), colour).getpixel((0, 0)))) < 6
    assert np.linalg.norm(_ab(plain[y, x]) - _ab(hinted[y, x])) > 20  # the point, not the model, coloured it
    assert len(posts) >= 3 and all(b'name="file"' not in p for p in posts[1:]), "the photo was sent again"
    assert all(b'name="photo"' in p for p in posts[1:])

    # drag the point elsewhere, then remove it (right-click): the download is the plain one again
    centre = dot.bounding_box()
    page.mouse.move(centre["x"] + centre["width"] / 2, centre["y"] + centre["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 300 * box["width"] / 512, box["y"] + 120 * box["height"] / 512, steps=5)
    page.mouse.up()
    x2, y2 = (round(float(dot.get_attribute(f"data-{c}"))) for c in "xy")
    assert abs(x2 - 300) <= 2 and abs(y2 - 120) <= 2
    _settled(page)
    moved = _download(page, tmp_path / "moved.png")
    assert np.linalg.norm(_ab(moved[y2, x2]) - _ab(plain[y2, x2])) > 10
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-hints.png"), full_page=True)
    dot.click(button="right")
    assert page.locator(".point").count() == 0
    _settled(page)
    np.testing.assert_array_equal(_download(page, tmp_path / "removed.png"), plain)
    assert page.is_hidden("#error")


def test_colour_points_work_from_the_keyboard(page, server, grey_astronaut):
    page.goto(server)
    page.set_input_files("#file", str(grey_astronaut))
    _settled(page)
    page.focus("#hint-mode")
    page.keyboard.press("Enter")  # the button: points on
    page.focus("#points")
    page.keyboard.press("Enter")  # a point in the middle
    dot = page.locator(".point")
    assert (dot.get_attribute("data-x"), dot.get_attribute("data-y")) == ("256", "256")
    dot.focus()
    page.keyboard.press("ArrowRight")
    assert float(page.locator(".point").get_attribute("data-x")) > 256
    assert "Point 1 at (261, 256)" in page.inner_text("#hint-list")
    page.locator(".point").focus()
    page.keyboard.press("Delete")
    assert page.locator(".point").count() == 0 and page.locator("#hint-list li").count() == 0
    _settled(page)
    assert page.is_hidden("#error")


def test_a_photo_the_server_no_longer_holds_is_sent_again(page, server, grey_astronaut):
    answers = []
    page.on("response", lambda r: answers.append(r.status) if r.url.endswith("/v1/colorize") else None)
    page.goto(server)
    page.set_input_files("#file", str(grey_astronaut))
    _settled(page)
    page.evaluate("photoId = '0'.repeat(64)")  # as if the server had dropped it (restart, eviction)
    page.fill("#saturation", "0.5")
    _settled(page)
    assert answers == [200, 404, 200] and page.is_hidden("#error")
