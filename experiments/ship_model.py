"""Turn a training checkpoint into a model shipped inside the package (or any fp16 model file).

Writes ``src/dlnet/model/weights/NAME.safetensors`` (fp16, config and images seen in its metadata)
and ``NAME.json`` (SHA-256, size, training, images seen), which
:func:`dlnet.model.weights.load_model` checks at every load. With ``--to PATH`` it writes only the
fp16 model file there (what the GPU run brings back).

    python experiments/ship_model.py runs/effnet-local/checkpoints/last.ckpt dlnet-effnet-local \\
        --description "EfficientNet-Lite0 encoder (ImageNet), local loss, MiniPlaces"
    python experiments/ship_model.py RUN/checkpoints/last.ckpt gpu-run --to $OUT/gpu-run.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dlnet.model.weights import WEIGHTS_DIR, images_seen, load_model, save_model, sha256_file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a .ckpt, or a .safetensors model file (e.g. from a GPU run)")
    p.add_argument("name")
    p.add_argument("--description", help="one line for the model's record (required when shipping)")
    p.add_argument("--to", help="write only the fp16 model file to this path")
    p.add_argument("--licence", default="weights trained on Places photos: non-commercial research and education use "
                                         "(see MODEL_CARD.md)",
                   help="the terms the training photos pass on to the weights (one line)")
    p.add_argument("--saturation", type=float,
                   help="the model's a*b* gain (ModelConfig.saturation; default: the checkpoint's, 1 for a training run)")
    args = p.parse_args()
    model = load_model(args.checkpoint)
    if args.saturation is not None:
        model.saturation = args.saturation
    seen = images_seen(args.checkpoint)
    dest = Path(args.to) if args.to else WEIGHTS_DIR / f"{args.name}.safetensors"
    if args.to is None and not args.description:
        p.error("--description is required when shipping into the package")
    path = save_model(model, dest, dtype=torch.float16, extra={"images_seen": seen})
    if args.to is None:
        training = {}
        if args.checkpoint.endswith(".ckpt"):
            ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
            training = {"trained_steps": ckpt["global_step"], "training": ckpt["hyper_parameters"]}
        elif args.checkpoint.endswith(".safetensors"):  # a model file: keep a soup's recipe
            from safetensors import safe_open

            with safe_open(args.checkpoint, framework="pt") as f:
                meta = f.metadata() or {}
            training = {"soup": json.loads(meta["soup"])} if "soup" in meta else {}
        record = {
            "description": args.description,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "dtype": "float16",
            "parameters": sum(p.numel() for p in model.parameters()),
            "images_seen": seen,
            "saturation": model.saturation,
            **training,
            "licence": args.licence,
        }
        path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    # fp16 storage must not change what the model does beyond rounding: check on a test input.
    x = torch.rand(1, 1, 64, 64) * 100
    with torch.no_grad():
        diff = (model(x) - load_model(path if args.to else args.name)(x)).abs().max().item()
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {seen} training images seen), "
          f"max |a*b*| change from fp16 storage: {diff:.3f}")


if __name__ == "__main__":
    main()
