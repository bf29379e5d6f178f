"""The ``dlnet`` console script: one subcommand per task, each a typed function in its module.

Each command module exposes ``configure(parser)`` (its flags) and ``run(args) -> int`` (exit
code). Modules are imported only for the command being run, so ``dlnet --help`` stays fast.

Exit codes: 0 success, 1 some inputs failed (the rest were processed), 2 usage or set-up error:
any :class:`~dlnet.errors.DLNetError` that reaches here (a UsageError, a model file that cannot
be loaded, ...) is printed as one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dlnet.apps.commands import one_line
from dlnet.errors import DLNetError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "colorize": ("dlnet.apps.commands.colorize", "colorize photos (files, folders, globs)"),
    "pack": ("dlnet.apps.commands.pack", "pack training photos into one file (fast training, GPU travel)"),
    "train": ("dlnet.apps.commands.train", "train a model (Lightning; one CPU to many GPUs)"),
    "evaluate": ("dlnet.apps.commands.evaluate", "score checkpoints and other methods against ground truth"),
    "export": ("dlnet.apps.commands.export", "export a model to ONNX"),
    "serve": ("dlnet.apps.commands.serve", "web page and REST API"),
    "models": ("dlnet.apps.commands.models", "list the shipped models"),
}


# The optional modules (by top-level name) and the extra that installs each.
EXTRAS = {"fastapi": "serve", "fastapi_offline": "serve", "starlette": "serve", "uvicorn": "serve",
          "multipart": "serve", "python_multipart": "serve", "onnx": "onnx", "onnxruntime": "onnx",
          "onnxscript": "onnx", "ray": "cluster", "pyarrow": "cluster"}


def _missing(module: str) -> str:
    top = module.partition(".")[0]
    if top in EXTRAS:
        extra = EXTRAS[top]
        return f'this needs the optional "{extra}" extra, which is not installed ({top} is missing): ' \
               f'pip install "dlnet[{extra}]"'
    return f"the Python module {top} is missing; reinstall dlnet (pip install dlnet)"


class _Version(argparse.Action):
    """``--version``, looked up only when asked (importlib.metadata costs 0.1 s at start-up)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from dlnet import __version__

        parser.exit(message=f"dlnet {__version__}\n")


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dlnet", description="dlnet: colorize grey photos with DL-Net, train and evaluate colorizers.")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        if argv[:1] == [name]:
            importlib.import_module(module).configure(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    try:
        return _main(argv)
    except DLNetError as e:  # a usage error, or any of dlnet's one-line errors a command let through
        print(one_line(f"dlnet {command}: error: {e}"), file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # an optional extra not installed (the server without [serve])
        if not e.name:
            raise
        print(one_line(f"dlnet {command}: error: {_missing(e.name)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
