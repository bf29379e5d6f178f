"""How far the ONNX runtime's photos are from the PyTorch path's, in 8-bit levels (the README's claim).

Colorizes the same photos with :class:`dlnet.infer.onnxrun.OnnxColorizer` (onnxruntime, fp32) and
:class:`dlnet.infer.colorizer.Colorizer` (PyTorch) in fp32 and, where the CPU runs it natively, in
bf16 (the Colorizer's default there), at the default options, and prints per photo: the largest
difference of any RGB value, the mean, and the share of values more than one level apart; plus
the largest a*b* difference of the model call itself (:func:`dlnet.infer.onnxrun.check_onnx`).

Photos: the example photo (examples/astronaut-bw.jpg) and synthetic ones made here: a smooth
grey gradient (the ramp on which a tester saw 39 levels), and noise.

Usage:
    python benchmarks/onnx_parity.py                      # the shipped default model
    python benchmarks/onnx_parity.py --model my.safetensors
    python benchmarks/onnx_parity.py --bf16               # PyTorch bf16 too on a CPU without native bf16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def photos() -> dict[str, np.ndarray]:
    from dlnet.io.imageio import read_rgb8

    h, w = 480, 640
    ramp = np.tile(np.linspace(0, 255, w), (h, 1)).round().astype(np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (h, w), dtype=np.uint8)
    return {"examples/astronaut-bw.jpg": read_rgb8(ROOT / "examples" / "astronaut-bw.jpg"),
            "grey ramp 640x480": np.stack([ramp] * 3, -1), "noise 640x480": np.stack([noise] * 3, -1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="shipped model name or file (default: the default model)")
    ap.add_argument("--bf16", action="store_true", help="also PyTorch bf16 where it is not the CPU's default (slow)")
    args = ap.parse_args()

    import torch

    from dlnet.infer.colorizer import Colorizer, default_precision
    from dlnet.infer.onnxrun import OnnxColorizer, cached_onnx, check_onnx
    from dlnet.model.weights import load_model

    onnx = OnnxColorizer.from_pretrained(args.model)
    print(f"model call, max |a*b*| difference onnxruntime vs PyTorch fp32: "
          f"{check_onnx(cached_onnx(args.model), load_model(args.model)):.2e}")
    precisions = ["fp32"] + (["bf16"] if args.bf16 or default_precision(torch.device("cpu")) == "bf16" else [])
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}; the Colorizer's default precision here: "
          f"{default_precision(torch.device('cpu'))}")
    print("| photo | PyTorch | max levels | mean levels | values > 1 level apart |")
    print("| --- | --- | --- | --- | --- |")
    for precision in precisions:
        torch_colorizer = Colorizer.from_pretrained(args.model, "cpu", precision=precision)
        for name, rgb in photos().items():
            a = np.asarray(onnx.colorize(rgb), dtype=np.int16)
            b = np.asarray(torch_colorizer.colorize(rgb), dtype=np.int16)
            d = np.abs(a - b)
            print(f"| {name} | {precision} | {d.max()} | {d.mean():.3f} | {(d > 1).mean():.2%} |")


if __name__ == "__main__":
    main()
