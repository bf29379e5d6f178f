"""Turn a training checkpoint into a model shipped inside the package.

Writes ``src/dlnet/weights/NAME.safetensors`` (fp16, config in its metadata) and ``NAME.json``
(SHA-256, size, where it came from), which :func:`dlnet.weights.load_model` checks at every load.

    python experiments/ship_model.py runs/effnet-local/checkpoints/last.ckpt dlnet-effnet-local \
        --description "EfficientNet-Lite0 encoder (ImageNet), local loss, MiniPlaces"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dlnet.weights import WEIGHTS_DIR, load_model, save_model, sha256_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("name")
    p.add_argument("--description", required=True)
    args = p.parse_args()
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model = load_model(args.checkpoint)
    path = save_model(model, WEIGHTS_DIR / f"{args.name}.safetensors", dtype=torch.float16)
    record = {
        "description": args.description,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "dtype": "float16",
        "parameters": sum(p.numel() for p in model.parameters()),
        "trained_steps": ckpt["global_step"],
        "training": ckpt["hyper_parameters"],
        "licence": "weights trained on Places photos: non-commercial research and education use (see MODEL_CARD.md)",
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    # fp16 storage must not change what the model does beyond rounding: check on a test input.
    x = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        diff = (model(x) - load_model(args.name)(x)).abs().max().item()
    print(f"wrote {path} ({record['bytes'] / 2**20:.1f} MiB), max |a*b*| change from fp16 storage: {diff:.3f}")


if __name__ == "__main__":
    main()
