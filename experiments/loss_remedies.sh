#!/usr/bin/env bash
# Issue 12's controlled experiment, in one command: every imbalance remedy trained on one network
# (the shipped default's architecture: EfficientNet-Lite0 from its ImageNet weights + U-Net
# decoder), with the same packed photos, split, seed, augmentation, schedule and number of
# images; then one `dlnet evaluate` table on the held-out test photos and one on BSDS500 val
# (confidence intervals, the grey baseline, the truth, the same photos in each grid), and the
# training curves of all runs in one figure.
#
# Each run resumes where it stopped (its last.ckpt), so the experiment can be spread over
# sessions or stopped with kill -TERM; a finished run is skipped. Same IMAGES for every remedy,
# always: that is the comparison.
#
# Usage:  IMAGES=100000 bash experiments/loss_remedies.sh
#         (PACK, OUT, DATA, BATCH, THREADS, REMEDIES, DLNET may be set; REMEDIES is a list of
#          global, local, local+5global (the shipped recipe until 327,872 images), local-sqrt,
#          rebalanced, rebalanced+1global (softer rebalancing: w(bin) + 1 per pixel), classification)
# Test:   IMAGES=64 BATCH=8 REMEDIES="global classification" OUT=/tmp/remedies LIMIT=8 bash experiments/loss_remedies.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-../runs/places128.pack}
OUT=${OUT:-../runs/remedies}
DATA=${DATA:-../shared/data}
IMAGES=${IMAGES:-100000}
BATCH=${BATCH:-32}
REMEDIES=${REMEDIES:-"global local local+5global local-sqrt rebalanced classification"}
DLNET=${DLNET:-.venv/bin/dlnet}
LIMIT=${LIMIT:-}  # score only the first N photos (a smoke test)
steps=$(( (IMAGES + BATCH - 1) / BATCH ))
mkdir -p "$OUT"
models=()
runs=()
for remedy in $REMEDIES; do
  case "$remedy" in
    local+5global) loss=(--loss local --global-weight 5) ;;
    rebalanced+1global) loss=(--loss rebalanced --global-weight 1) ;;
    global|local|local-sqrt|rebalanced|classification) loss=(--loss "$remedy") ;;
    *) echo "unknown remedy: $remedy" >&2; exit 2 ;;
  esac
  run="$OUT/$remedy"
  if [ -f "$run/checkpoints/last.ckpt" ]; then
    start=(--config "$run/config.yaml" --resume)
  else
    start=(--packed "$PACK" --encoder efficientnet_lite0 --pretrained --decoder unet --size 128
           --batch-size "$BATCH" --lr 1e-3 --encoder-lr-scale 0.1 --warmup-steps 100 "${loss[@]}"
           --max-steps "$steps" --epochs 100000 --seed 0 --val-every-steps 250)
  fi
  echo "== $remedy: $IMAGES images ($steps steps of $BATCH) -> $run"
  OMP_NUM_THREADS=${THREADS:-2} "$DLNET" train "${start[@]}" --out "$run" >>"$OUT/$remedy.log" 2>&1 \
    || { tail -n 20 "$OUT/$remedy.log"; exit 1; }
  models+=(--model "$remedy=$run/checkpoints/last.ckpt")
  runs+=("$run")
done
common=(--size 256 --working-size 128 --grid 6 --overwrite ${LIMIT:+--limit "$LIMIT"})
"$DLNET" evaluate --data "$PACK.split/test.txt" "${models[@]}" --out "$OUT/eval-test" "${common[@]}"
if [ -d "$DATA/bsds500/val" ]; then
  "$DLNET" evaluate --data "$DATA/bsds500/val" "${models[@]}" --out "$OUT/eval-bsds" "${common[@]}"
fi
"${PYTHON:-.venv/bin/python}" experiments/plot_curves.py "${runs[@]}" -o "$OUT/curves.png"
echo "tables: $OUT/eval-test/report.md $OUT/eval-bsds/report.md; curves: $OUT/curves.png"
