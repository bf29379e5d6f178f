"""Server time per colour-hint update (issue 28): how long ``dlnet serve`` takes to re-colorize a
1-MP photo when the page's user drops or drags a point, measured by the server's own
``Server-Timing`` header (the photo's turn at a worker: decode or cache, colorize, encode), and
the round trip through the ASGI app (in process, no network).

Each update moves one of the 10 hints a few pixels (as a drag does), so no two requests are the
same. The rows:

- ``upload + png``: the photo sent and decoded again every time, PNG answer (a page without the cache);
- ``by id + jpeg``: the photo named by its id (``photo`` field, decoded once, kept by the server),
  JPEG preview: what the page sends while points change; ``by id + png``: the download after;
- ``propagate`` on the shipped default model (the runtime the server picks), ``learned`` on a
  hint model of the same architecture (``--learned FILE``, else a random-init one with hint
  inputs: the speed is the architecture's, not the weights'), and no hints (the floor).

Then the stages of one propagate update, timed alone (public functions, the pipeline's order),
to show where the time goes.

    python benchmarks/serve_hints.py                      # 15 updates per row, 1000 x 1000 photo
    DLNET_FINAL_BENCH=1 bash /work/runs/quiet.sh .venv/bin/python benchmarks/serve_hints.py --repeats 21
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def test_photo(side: int) -> bytes:
    """A grey JPEG of scikit-image's astronaut, ``side`` px square (1 MP at 1000)."""
    from skimage import data
    from skimage.color import rgb2gray

    grey = Image.fromarray((rgb2gray(data.astronaut()) * 255).round().astype(np.uint8)).resize((side, side))
    buf = io.BytesIO()
    grey.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def hint_sets(side: int, n: int, updates: int, seed: int = 0) -> list[list[dict]]:
    """``updates`` hint lists of ``n`` points each; each list moves one point of the one before by 3 px."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.1 * side, 0.9 * side, (n, 2))
    colours = [f"#{r:02x}{g:02x}{b:02x}" for r, g, b in rng.integers(40, 215, (n, 3))]
    out = []
    for u in range(updates):
        xy[u % n] += 3.0 * (1 if u % 2 else -1)
        out.append([{"x": round(float(x), 1), "y": round(float(y), 1), "color": c} for (x, y), c in zip(xy, colours)])
    return out


def hint_model_file(folder: Path) -> str:
    """The shipped default's architecture with hint inputs (random init): a learned-method model."""
    from dlnet import DLNet, save_model
    from dlnet.model.weights import load_model

    config = load_model(None).config
    return str(save_model(DLNet(dataclasses.replace(config, hints=True, pretrained=False)), folder / "hint-model.safetensors"))


def serve(weights: str | None):
    """A TestClient on the app ``dlnet serve`` would run for ``weights``, its runtime settled."""
    from fastapi.testclient import TestClient

    from dlnet.apps.serve import ServeSettings, create_app

    client = TestClient(create_app(settings=ServeSettings(weights=weights)))
    for _ in range(600):  # a background PyTorch take-over, where the server chooses one, first
        info = client.get("/healthz").json()
        if not info["loading"]:
            return client, info
        time.sleep(0.1)
    raise SystemExit("the server's runtime did not settle in 60 s")


def timed_updates(client, photo: bytes, sets: list[list[dict]], by_id: bool, fmt: str, method: str | None) -> dict:
    first = client.post("/v1/colorize", files={"file": ("photo.jpg", photo, "image/jpeg")}, data={"format": "jpeg"})
    assert first.status_code == 200, first.text
    photo_id = first.headers["x-photo-id"]
    server, wall = [], []
    for i, hints in enumerate(sets):
        data = {"format": fmt}
        if method:
            data.update(hints=json.dumps(hints), hint_method=method)
        files = None
        if by_id:
            data["photo"] = photo_id
        else:
            files = {"file": ("photo.jpg", photo, "image/jpeg")}
        t = time.perf_counter()
        resp = client.post("/v1/colorize", files=files, data=data)
        took = time.perf_counter() - t
        assert resp.status_code == 200, resp.text
        if i >= 2:  # the first two warm up
            server.append(float(resp.headers["server-timing"].split("dur=")[1]))
            wall.append(1000 * took)
    q = lambda xs, p: float(np.percentile(xs, p))  # noqa: E731
    return {"server_ms": statistics.median(server), "server_p90_ms": q(server, 90), "round_trip_ms": statistics.median(wall)}


def stages(colorizer, photo: bytes, hints: list[dict], repeats: int) -> dict[str, float]:
    """Median ms of each step of one propagate update at working size 128 (the pipeline's order)."""
    from dlnet import InferenceOptions
    from dlnet.color.fullres import lightness, merge_rgb8, resize_l
    from dlnet.color.propagate import hint_map, propagate
    from dlnet.infer.options import working_shape
    from dlnet.io.imageio import encode_image, read_image

    hs = InferenceOptions(hints=hints).hints
    state: dict = {}
    steps = {
        "decode JPEG": lambda: state.update(p=read_image(photo)),
        "L* (full size)": lambda: state.update(l=lightness(state["p"].rgb)),
        "L* (working size)": lambda: state.update(s=resize_l(state["l"], working_shape(*state["l"].shape, 128))),
        "model": lambda: state.update(p0=colorizer(state["s"][None, None])[0] * colorizer.model_saturation),
        "hint map": lambda: state.update(m=hint_map(hs, state["l"].shape, state["s"].shape)),
        "propagate": lambda: state.update(ab=propagate(state["s"], state["p0"], state["m"])),
        # beside it, the same solve on the working size's own grid (what propagate did before
        # it solved at half of it); not part of the update
        "(propagate solved at the working size)": lambda: propagate(state["s"], state["p0"], state["m"], coarsen=1),
        "a*b* up + sRGB (full size)": lambda: state.update(rgb=merge_rgb8(state["l"], state["ab"])),
        "encode JPEG": lambda: encode_image(Image.fromarray(state["rgb"]), "jpeg"),
        "encode PNG": lambda: encode_image(Image.fromarray(state["rgb"]), "png"),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(repeats + 1):
        for name, fn in steps.items():
            t = time.perf_counter()
            fn()
            if r:
                times[name].append(1000 * (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=1000, help="the photo's side, px (1000: 1 MP)")
    ap.add_argument("--hints", type=int, default=10, help="points per update")
    ap.add_argument("--repeats", type=int, default=15, help="timed updates per row")
    ap.add_argument("--learned", help="a hint model file (default: a random-init one of the shipped architecture)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    photo = test_photo(args.side)
    sets = hint_sets(args.side, args.hints, args.repeats + 2)
    rows, out = [], {"photo": f"{args.side} x {args.side} grey JPEG", "hints": args.hints, "cpus": len(os.sched_getaffinity(0))}
    client, info = serve(None)
    out["shipped"] = {k: info[k] for k in ("model", "runtime", "precision")}
    for label, by_id, fmt, method in [("upload + png", False, "png", "propagate"), ("by id + jpeg", True, "jpeg", "propagate"),
                                      ("by id + png", True, "png", "propagate"), ("by id + jpeg", True, "jpeg", None)]:
        rows.append((f"{info['model']} ({info['runtime']})", method or "no hints", label,
                     timed_updates(client, photo, sets, by_id, fmt, method)))
    from dlnet.infer.runtime import Work, load_colorizer

    breakdown = stages(load_colorizer(None, Work(photos=1, size=128), "onnx"), photo, sets[0], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        learned = args.learned or hint_model_file(Path(tmp))
        os.environ["DLNET_CACHE"] = tmp  # its ONNX export goes with it, not into the user's cache
        lclient, linfo = serve(learned)
        out["learned_model"] = {k: linfo[k] for k in ("model", "runtime", "precision")}
        for label, by_id, fmt in [("upload + png", False, "png"), ("by id + jpeg", True, "jpeg"), ("by id + png", True, "png")]:
            rows.append((f"hint model ({linfo['runtime']})", "learned", label,
                         timed_updates(lclient, photo, sets, by_id, fmt, "learned")))
    print(f"{out['photo']}, {args.hints} hints, {out['cpus']} CPUs; medians of {args.repeats} updates")
    print("| model (runtime) | hints | request | server ms | server p90 ms | round trip ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model, method, label, r in rows:
        print(f"| {model} | {method} | {label} | {r['server_ms']:.0f} | {r['server_p90_ms']:.0f} | {r['round_trip_ms']:.0f} |")
    print(f"\none propagate update, step by step ({out['shipped']['model']} on onnxruntime, working size 128), median ms:")
    print("| step | ms |\n| --- | --- |")
    for name, ms in breakdown.items():
        print(f"| {name} | {ms:.1f} |")
    out["rows"] = [{"model": m, "hints": h, "request": lab, **r} for m, h, lab, r in rows]
    out["stages_ms"] = breakdown
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
