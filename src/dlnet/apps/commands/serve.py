"""``dlnet serve``: the colorizing web page and REST API (FastAPI + uvicorn), on this computer.

Example:
    dlnet serve                              # http://127.0.0.1:8000, the default model
    dlnet serve --port 9000 --model my.safetensors
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import sys

from dlnet.apps.commands import UsageError, add_model_flag, option_error


def configure(parser: argparse.ArgumentParser) -> None:
    for module in ("fastapi", "uvicorn"):  # the [serve] extra: without it even --help says what to install
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
    from dlnet.apps.serve_settings import ServeSettings
    from dlnet.config import add_flags

    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this computer only; "
                             "0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port, 0..65535 (default: 8000)")
    parser.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"),
                        default="info", help="server log level (default: info)")
    add_model_flag(parser)
    add_flags(parser, ServeSettings, defaults=False)  # the settings' own help and ranges


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from dlnet.apps.serve import create_app
    from dlnet.apps.serve_settings import ServeSettings
    from dlnet.config import from_args
    from dlnet.model.weights import WeightsError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    values = {"weights": args.model, **from_args(args, ServeSettings)}
    if "max_size" not in values and "default_size" in values:  # --size 2048 alone raises the limit with it
        values["max_size"] = max(ServeSettings.max_size, values["default_size"])
    try:
        app = create_app(settings=ServeSettings(**values))
    except ValueError as e:
        raise option_error(e, ServeSettings) from None
    except WeightsError as e:
        raise UsageError(str(e)) from None
    if not _is_loopback(args.host):
        print(f"dlnet serve: warning: listening on {args.host}: other computers can reach this server",
              file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, server_header=False)
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
