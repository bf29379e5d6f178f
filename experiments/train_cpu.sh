#!/usr/bin/env bash
# The shipped model's training on the CPU, all session long (issue 9): start it at the beginning
# of every session. It runs in the background, niced, in a run folder outside the repository, and
# continues from where the last session stopped (RUN/checkpoints/last.ckpt), or on a new machine
# from INIT (default: the shipped default model). Pause it while benchmarking:
#   kill -STOP $(cat RUN.pid)   ...   kill -CONT $(cat RUN.pid)
# Stop it (the final state is saved):  kill -TERM $(cat RUN.pid)   (a background job ignores -INT)
#
# Since the seventh session (docs/RESULTS.md) the run being continued is a fresh lineage from
# ImageNet weights, not the shipped model's. In the ninth session it reached 1,200,000 images
# (../runs/s26-reb, four cosines; the last with rebalanced + 0.25 x global) and is the candidate
# to ship (RESULTS, ninth session, part 3). Continue it with a new cosine from
# ../runs/s26-reb/checkpoints/last.ckpt (the ninth session's command with --init set to it, a new
# seed and --out); on a machine without it, rebuild it with the commands given there.
#
# Usage: bash experiments/train_cpu.sh            (RUN, PACK, INIT, DATA, LOSS, GW, THREADS may be set)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-../runs/shipped-cpu}
PACK=${PACK:-../runs/places128.pack}
DATA=${DATA:-../shared/data}
DLNET=${DLNET:-.venv/bin/dlnet}
if [ -f "$RUN.pid" ] && kill -0 "$(cat "$RUN.pid")" 2>/dev/null; then
  echo "already running: pid $(cat "$RUN.pid")"; exit 0
fi
if [ ! -f "$PACK" ]; then  # decoded once into PACK.u8 by the first training run
  "$DLNET" pack --data "$DATA/miniplaces-val" --extra-train "$DATA/miniplaces-train" -o "$PACK" --quality 90
fi
mkdir -p "$RUN"
if [ -f "$RUN/checkpoints/last.ckpt" ]; then
  start=(--config "$RUN/config.yaml" --resume)
else
  # The recipe chosen by the side-by-side probes (docs/RESULTS.md): U-Net decoder, encoder at a
  # tenth of the decoder's learning rate, and since 620,384 images the rebalanced loss alone (the
  # only loss that moved hue spread; its accuracy comes back in the cool-down's global anchor).
  # Until then: local + 1 x global (5 x global until 327,872 images). LOSS and GW override it.
  start=(--packed "$PACK" --init "${INIT:-dlnet-effnet-unet}" --encoder efficientnet_lite0 --decoder unet
         --size 128 --batch-size 32 --lr 1e-3 --encoder-lr-scale 0.1 --warmup-steps 100
         --loss "${LOSS:-rebalanced}" --global-weight "${GW:-0}" --epochs 100000 --val-every-steps 250)
fi
OMP_NUM_THREADS=${THREADS:-2} nohup nice -n 5 "$DLNET" train "${start[@]}" --out "$RUN" >>"$RUN.log" 2>&1 &
echo $! > "$RUN.pid"
echo "training in the background: pid $!, log $RUN.log, run $RUN"
