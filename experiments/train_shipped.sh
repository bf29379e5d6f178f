#!/usr/bin/env bash
# The controlled experiment behind the shipped model (issue 4): three runs with identical data,
# budget, seed and settings, run side by side on one 2-core CPU (one thread each).
# Usage: bash experiments/train_shipped.sh [RUNS_DIR]   (resumable: run it again to continue)
set -euo pipefail
runs=${1:-runs}
data=${DATA:-../shared/data}
steps=${STEPS:-1000}
common=(--data "$data/miniplaces-val" --extra-train "$data/miniplaces-train" --size 128 --batch-size 32
        --max-steps "$steps" --lr 1e-3 --schedule cosine --seed 0 --workers 1
        --val-every-steps 250 --precision bf16-mixed)
launch() {  # name, extra flags...
  local name=$1; shift
  local resume=()
  [ -f "$runs/$name/checkpoints/last.ckpt" ] && resume=(--resume)
  OMP_NUM_THREADS=1 dlnet train "${common[@]}" --out "$runs/$name" "$@" "${resume[@]}" \
    >"$runs/$name.log" 2>&1 &
}
mkdir -p "$runs"
start=$(date +%s)
launch densenet-global --encoder densenet121 --loss global
launch densenet-local --encoder densenet121 --loss local --clusters 5
launch effnet-local --encoder efficientnet_lite0 --pretrained --loss local --clusters 5
wait
echo "wall time: $(( $(date +%s) - start )) s" | tee "$runs/wall_time.txt"
