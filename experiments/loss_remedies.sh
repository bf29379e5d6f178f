#!/usr/bin/env bash
# Issue 12's controlled experiment: every imbalance remedy trained on one network (the shipped
# default's architecture: EfficientNet-Lite0 from its ImageNet weights + U-Net decoder), with the
# same packed photos, split, seed, augmentation, schedule and number of images, scored by
# `dlnet evaluate` on the held-out test photos and on BSDS500 val.
#
# Sessions here run on fresh machines, so checkpoints do not outlive the session that trained
# them. What the write-up needs does: as soon as a remedy has trained, its scores (per-photo rows
# and summary, test and BSDS500), its training log and its colorizations of the public-domain
# photos go to RESULTS/REMEDY/ (in the repository: commit them). A remedy with results there is
# done and skipped, so the experiment spreads over sessions; within a session an interrupted run
# resumes from its last.ckpt. Once every remedy has results, the tables are joined with
# `dlnet evaluate --merge` (paired intervals across all remedies, vs global), the grid is drawn
# from the kept colorizations and the curves from the kept logs.
#
# Usage:  IMAGES=100000 bash experiments/loss_remedies.sh
#         (PACK, OUT, RESULTS, DATA, BATCH, THREADS, REMEDIES, DLNET may be set; REMEDIES is a list of
#          global, local, local+5global (the shipped recipe until 327,872 images), local-sqrt,
#          rebalanced, rebalanced+1global (softer rebalancing: w(bin) + 1 per pixel), classification)
# Test:   IMAGES=64 BATCH=8 REMEDIES="global classification" OUT=/tmp/remedies RESULTS=/tmp/remedies/kept \
#           LIMIT=8 bash experiments/loss_remedies.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-../runs/places128.pack}
OUT=${OUT:-../runs/remedies}
RESULTS=${RESULTS:-docs/remedies}
DATA=${DATA:-../shared/data}
IMAGES=${IMAGES:-100000}
BATCH=${BATCH:-32}
REMEDIES=${REMEDIES:-"global local local+5global local-sqrt rebalanced classification"}
DLNET=${DLNET:-.venv/bin/dlnet}
PYTHON=${PYTHON:-.venv/bin/python}
LIMIT=${LIMIT:-}  # score only the first N photos (a smoke test)
steps=$(( (IMAGES + BATCH - 1) / BATCH ))
common=(--size 256 --working-size 128 --overwrite ${LIMIT:+--limit "$LIMIT"})
mkdir -p "$OUT"
[ -d "$OUT/pd-photos" ] || "$PYTHON" experiments/public_domain_photos.py "$OUT/pd-photos" --size 256

keep() {  # keep REPORT_DIR's scores in KEPT_DIR: the summary and the per-photo rows, gzipped
  mkdir -p "$2"
  cp "$1/summary.json" "$2/"
  gzip -9 -n -c "$1/per_image.csv" > "$2/per_image.csv.gz"
}

for remedy in $REMEDIES; do
  case "$remedy" in
    local+5global) loss=(--loss local --global-weight 5) ;;
    rebalanced+1global) loss=(--loss rebalanced --global-weight 1) ;;
    global|local|local-sqrt|rebalanced|classification) loss=(--loss "$remedy") ;;
    *) echo "unknown remedy: $remedy" >&2; exit 2 ;;
  esac
  kept="$RESULTS/$remedy"
  if [ -f "$kept/test/summary.json" ]; then
    echo "== $remedy: done ($kept)"; continue
  fi
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
  ckpt="$run/checkpoints/last.ckpt"
  "$PYTHON" -c "import sys, torch; n = torch.load(sys.argv[1], map_location='cpu', weights_only=False)['global_step']
sys.exit(f'{sys.argv[1]}: {n} of {sys.argv[2]} steps: not finished' if n < int(sys.argv[2]) else 0)" "$ckpt" "$steps"
  "$DLNET" evaluate --data "$PACK.split/test.txt" --model "$remedy=$ckpt" --grid 0 --out "$run/eval-test" "${common[@]}"
  if [ -d "$DATA/bsds500/val" ]; then
    "$DLNET" evaluate --data "$DATA/bsds500/val" --model "$remedy=$ckpt" --grid 0 --out "$run/eval-bsds" "${common[@]}"
    keep "$run/eval-bsds" "$kept.tmp/bsds"
  fi
  "$DLNET" colorize "$OUT"/pd-photos/*.png -o "$kept.tmp/pd" --model "$ckpt" --size 128 --runtime torch \
    --format webp --quality 90 --overwrite
  mkdir -p "$kept.tmp/logs"
  cp "$run/config.yaml" "$kept.tmp/"
  "$PYTHON" -c "import sys; sys.path.insert(0, 'experiments'); from plot_curves import read_log
from pathlib import Path; log = read_log(Path(sys.argv[1])); log is None or log.to_csv(sys.argv[2], index=False)" \
    "$run" "$kept.tmp/logs/metrics.csv"  # one log of all the run's restarts
  keep "$run/eval-test" "$kept.tmp/test"  # last: a folder with test/summary.json is a finished remedy
  rm -rf "$kept" && mv "$kept.tmp" "$kept"
  echo "== $remedy: results kept in $kept"
done

# The write-up's tables, grid and curves, once every remedy has its results (and there are two).
[ "$(wc -w <<< "$REMEDIES")" -gt 1 ] || exit 0
for remedy in $REMEDIES; do
  [ -f "$RESULTS/$remedy/test/summary.json" ] || { echo "$remedy has no results yet"; exit 0; }
done
tests=(); bsds=(); preds=(); logs=()
for remedy in $REMEDIES; do
  tests+=("$RESULTS/$remedy/test")
  [ -d "$RESULTS/$remedy/bsds" ] && bsds+=("$RESULTS/$remedy/bsds")
  preds+=(--pred "$remedy=$RESULTS/$remedy/pd")
  logs+=("$RESULTS/$remedy")
done
"$DLNET" evaluate --merge "${tests[@]}" --out "$OUT/eval-test" --overwrite
[ ${#bsds[@]} -gt 1 ] && "$DLNET" evaluate --merge "${bsds[@]}" --out "$OUT/eval-bsds" --overwrite
"$DLNET" evaluate --data "$OUT/pd-photos" "${preds[@]}" --size 256 --grid 4 --out "$OUT/eval-pd" --overwrite
"$PYTHON" experiments/plot_curves.py "${logs[@]}" -o "$OUT/curves.png"
echo "tables: $OUT/eval-test/report.md $OUT/eval-bsds/report.md; grid: $OUT/eval-pd/grid.png; curves: $OUT/curves.png"
