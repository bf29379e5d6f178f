"""Average the weights of models from one lineage (a "model soup", Wortsman et al. 2022).

A run fine-tuned from a model stays in the same basin as it, so the straight line between the
two is a family of models that costs no training: ``A=0.5 B=0.5`` is the midpoint. The weights
must have the same architecture; use it on models where one was trained from the other (for
unrelated runs the average is noise). The soup has seen the images of its largest ingredient,
which, for a fine-tune and its start, is all the training that went into either.

    python experiments/soup.py dlnet-effnet-unet=0.5 RUN/checkpoints/last.ckpt=0.5 -o soup.safetensors
    python experiments/compare_runs.py ../runs/places128.pack soup=soup.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dlnet.model.weights import WeightsError, images_seen, load_model, save_model


def soup(models: list[torch.nn.Module], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of ``models``' state dicts (weights normalised to sum to 1).

    Integer buffers (BatchNorm's batch counters) are taken from the first model.

    >>> a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    >>> _ = a.weight.data.fill_(1.0), b.weight.data.fill_(3.0)
    >>> soup([a, b], [1, 1])["weight"].item()
    2.0
    """
    total = sum(weights)
    if min(weights) < 0 or total <= 0:
        raise ValueError(f"the weights must be >= 0 with a positive sum, got {list(weights)}")
    states = [m.state_dict() for m in models]
    if any(s.keys() != states[0].keys() or any(s[k].shape != v.shape for k, v in states[0].items())
           for s in states):
        raise ValueError("the models differ in architecture (their parameters do not match)")
    return {k: (sum(w / total * s[k].float() for s, w in zip(states, weights))
                if v.is_floating_point() else v.clone())
            for k, v in states[0].items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ingredients", nargs="+", help="MODEL=WEIGHT (a shipped name, model file or .ckpt)")
    p.add_argument("-o", "--out", required=True, help="the fp16 model file to write (never overwritten)")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        p.error(f"{out}: exists; not overwritten")
    try:
        names, weights = zip(*(s.rsplit("=", 1) for s in args.ingredients))
        weights = [float(w) for w in weights]
        models = [load_model(n) for n in names]
        first = models[0]
        first.load_state_dict(soup(models, weights))
    except (ValueError, WeightsError) as e:  # a bad MODEL=WEIGHT, an unreadable file, mixed architectures
        p.error(str(e))
    recipe = [{"model": n, "weight": w} for n, w in zip(names, weights)]
    save_model(first, out, dtype=torch.float16,
               extra={"images_seen": max(images_seen(n) for n in names), "soup": recipe})
    print(f"{out}: {json.dumps(recipe)}")


if __name__ == "__main__":
    main()
