"""``dlnet models``: list the models shipped inside the package."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from dlnet.model.weights import DEFAULT_MODEL, WEIGHTS_DIR, available_models

    rows = []
    for name in available_models():
        record = json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
        rows.append({"name": name, "default": name == DEFAULT_MODEL, **record})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['name']}{' (default)' if r['default'] else ''}: {r.get('description', '')}")
    return 0
