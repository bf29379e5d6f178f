"""``dlnet export``: write a model as ONNX (dynamic batch, height and width) and check it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dlnet.apps.commands import UsageError, add_model_flag, option_error


def configure(parser: argparse.ArgumentParser) -> None:
    from dlnet.infer.export import OPSET
    from dlnet.infer.onnxrun import PARITY_TOLERANCE
    from dlnet.infer.options import MAX_TEMPERATURE, MIN_TEMPERATURE

    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    add_model_flag(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="output file, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=None, metavar="T",
                        help="classification models only: the annealed-mean temperature the export fixes, "
                             f"{MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g} (default: the model's own)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip the onnxruntime parity check against PyTorch")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--tolerance", type=float, default=PARITY_TOLERANCE,
                        help="largest a*b* difference to PyTorch fp32 accepted by the check (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from dlnet.infer.export import export_onnx
    from dlnet.infer.onnxrun import check_onnx
    from dlnet.infer.options import InferenceOptions
    from dlnet.model.weights import WeightsError, load_model

    if args.output.is_dir():
        raise UsageError(f"{args.output}: is a folder; give a file name such as model.onnx")
    if args.output.exists() and not args.overwrite:  # never a user's file replaced unasked (a photo, a model)
        raise UsageError(f"{args.output}: exists; pass --overwrite to replace it")
    try:
        model = load_model(args.model)
    except WeightsError as e:
        raise UsageError(str(e)) from None
    if args.temperature is not None:
        if model.config.head != "classification":
            raise UsageError(f"{args.model or 'the default model'}: --temperature applies to classification models; this one is {model.config.head}")
        try:
            InferenceOptions(temperature=args.temperature)  # the inference option's range, checked once
        except ValueError as e:
            raise option_error(e) from None
        model.temperature = args.temperature
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(model, args.output, opset=args.opset)
    except OSError as e:
        raise UsageError(f"{args.output}: cannot write ({e.strerror or e})") from None
    if not args.check:
        print(f"wrote {args.output} (not checked)")
        return 0
    diff = check_onnx(args.output, model)
    print(f"wrote {args.output}; onnxruntime vs PyTorch fp32: max |a*b* difference| = {diff:.2e}")
    if diff > args.tolerance:
        print(f"dlnet export: error: {args.output}: difference {diff:.2e} exceeds {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0
