"""``dlnet serve``: the colorizing web page and REST API (FastAPI + uvicorn), on this computer.

Example:
    dlnet serve                              # http://127.0.0.1:8000, the default model
    dlnet serve --port 9000 --model my.safetensors
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from dlnet.apps.commands import UsageError, add_model_flag, millions, option_error


def configure(parser: argparse.ArgumentParser) -> None:
    from dlnet.apps.serve import ServeSettings
    from dlnet.infer.runtime import RUNTIMES

    d = ServeSettings()
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this computer only; "
                             "0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    add_model_flag(parser)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default=None,
                        help="inference precision (default: what the device runs fast)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="inference runtime (default: onnxruntime at once on a CPU, handing over to PyTorch "
                             "once loaded where that is faster per photo: native bf16, a GPU)")
    parser.add_argument("--size", type=int, default=d.default_size,
                        help=f"default working size, longer side in px (default: {d.default_size})")
    parser.add_argument("--rebalance", action=argparse.BooleanOptionalAction, default=d.rebalance,
                        help=f"rebalance colours when a request does not say (default: {'on' if d.rebalance else 'off'})")
    parser.add_argument("--workers", type=int, default=d.workers,
                        help=f"photos colorized at the same time (default: {d.workers})")
    parser.add_argument("--queue", type=int, default=d.queue_size,
                        help=f"photos that may wait for a worker, answered in turn; beyond that the server "
                             f"answers 503 (default: {d.queue_size})")
    parser.add_argument("--queue-timeout", type=float, default=d.queue_timeout_s, metavar="SECONDS",
                        help=f"longest wait for a worker; longer waits get 503 (default: {d.queue_timeout_s:g})")
    parser.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / 1e6,
                        help=f"largest upload in MB (default: {d.max_upload_bytes / 1e6:g})")
    parser.add_argument("--max-megapixels", type=float, default=d.max_pixels / 1e6,
                        help=f"largest image in megapixels (default: {d.max_pixels / 1e6:g})")
    parser.add_argument("--upload-timeout", type=float, default=d.upload_timeout_s, metavar="SECONDS",
                        help=f"time a client has to send its upload; slower ones get 408 "
                             f"(default: {d.upload_timeout_s:g})")
    parser.add_argument("--max-video-seconds", type=float, default=d.max_video_seconds, metavar="SECONDS",
                        help=f"longest video accepted, 0 = photos only (default: {d.max_video_seconds:g})")
    parser.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"),
                        default="info", help="server log level (default: info)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from dlnet.apps.serve import ServeSettings, create_app
    from dlnet.model.weights import WeightsError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    max_upload_bytes = millions("--max-upload-mb", args.max_upload_mb)
    max_pixels = millions("--max-megapixels", args.max_megapixels)
    try:
        settings = ServeSettings(
            weights=args.model, device=args.device, precision=args.precision, runtime=args.runtime, default_size=args.size,
            max_size=max(1024, args.size), rebalance=args.rebalance, workers=args.workers,
            queue_size=args.queue, queue_timeout_s=args.queue_timeout, max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
            upload_timeout_s=args.upload_timeout, max_video_seconds=args.max_video_seconds)
        app = create_app(settings=settings)
    except ValueError as e:
        raise option_error(e) from None
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
