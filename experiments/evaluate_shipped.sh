#!/usr/bin/env bash
# Scores the three runs of train_shipped.sh, the grey baseline and the rebalancing post-process
# on the held-out test photos (20% of every MiniPlaces category) and on BSDS500 val.
# Usage: bash experiments/evaluate_shipped.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
data=${DATA:-../shared/data}
ckpts=(--checkpoint "global=$runs/densenet-global/checkpoints/last.ckpt"
       --checkpoint "local=$runs/densenet-local/checkpoints/last.ckpt"
       --checkpoint "effnet-local=$runs/effnet-local/checkpoints/last.ckpt")
# The three runs share one split (same data, same seed): check rather than assume.
cmp "$runs/densenet-global/split/test.txt" "$runs/densenet-local/split/test.txt"
cmp "$runs/densenet-global/split/test.txt" "$runs/effnet-local/split/test.txt"
common=(--precision bf16 --batch-size 32 --rebalance --overwrite)
dlnet evaluate --data "$runs/densenet-local/split/test.txt" "${ckpts[@]}" --size 256 --out "$runs/eval-test-256" "${common[@]}"
dlnet evaluate --data "$data/bsds500/val" "${ckpts[@]}" --size 256 --out "$runs/eval-bsds-256" "${common[@]}"
