"""Average the weights of models from one lineage (a "model soup", Wortsman et al. 2022).

A run fine-tuned from a model stays in the same basin as it, so the straight line between the
two is a family of models that costs no training: ``A=0.5 B=0.5`` is the midpoint. The weights
must have the same architecture; use it on models where one was trained from the other (for
unrelated runs the average is noise). A fine-tune may add layers its start lacks (the hint
inputs at the skip connections, ``--hint-skips``): such a tensor is averaged over the
ingredients that have it, and the soup takes the architecture of the ingredient that has them
all. The soup has seen the images of its largest ingredient, which, for a fine-tune and its
start, is all the training that went into either.

    python experiments/soup.py dlnet-effnet-unet=0.5 RUN/checkpoints/last.ckpt=0.5 -o soup.safetensors
    python experiments/compare_runs.py ../runs/places128.pack soup=soup.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dlnet.model.weights import WeightsError, images_seen, load_model, save_model


def soup(models: list[torch.nn.Module], weights: list[float]) -> tuple[int, dict[str, torch.Tensor]]:
    """The weighted mean of ``models``' state dicts (weights normalised to sum to 1).

    Returns the index of the model whose architecture the soup has (the one holding every
    tensor) and the state dict. A tensor only some models hold is the weighted mean over those;
    integer buffers (BatchNorm's batch counters) are taken from the first model holding them.

    >>> a, b = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    >>> _ = a.weight.data.fill_(1.0), b.weight.data.fill_(3.0)
    >>> soup([a, b], [1, 1])[1]["weight"].item()
    2.0
    """
    if min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"the weights must be >= 0 with a positive sum, got {list(weights)}")
    states = [m.state_dict() for m in models]
    widest = max(range(len(states)), key=lambda i: len(states[i]))
    wide = states[widest]
    if any(k not in wide or wide[k].shape != v.shape for s in states for k, v in s.items()):
        raise ValueError("the models differ in architecture (their parameters do not match)")
    out = {}
    for k, v in wide.items():
        held = [(s[k], w) for s, w in zip(states, weights) if k in s]
        total = sum(w for _, w in held)
        if not v.is_floating_point() or total <= 0:
            out[k] = held[0][0].clone()
        else:
            out[k] = sum(w / total * t.float() for t, w in held)
    return widest, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ingredients", nargs="+", help="MODEL=WEIGHT (a shipped name, model file or .ckpt)")
    p.add_argument("-o", "--out", required=True, help="the fp16 model file to write (never overwritten)")
    p.add_argument("--saturation", type=float,
                   help="the soup's a*b* gain (default: that of the ingredient whose architecture it has)")
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        p.error(f"{out}: exists; not overwritten")
    try:
        names, weights = zip(*(s.rsplit("=", 1) for s in args.ingredients))
        weights = [float(w) for w in weights]
        models = [load_model(n) for n in names]
        widest, state = soup(models, weights)
        model = models[widest]
        model.load_state_dict(state)
        if args.saturation is not None:
            model.saturation = args.saturation
    except (ValueError, WeightsError) as e:  # a bad MODEL=WEIGHT, an unreadable file, mixed architectures
        p.error(str(e))
    recipe = [{"model": n, "weight": w} for n, w in zip(names, weights)]
    save_model(model, out, dtype=torch.float16,
               extra={"images_seen": max(images_seen(n) for n in names), "soup": recipe})
    print(f"{out}: {json.dumps(recipe)}")


if __name__ == "__main__":
    main()
