#!/usr/bin/env bash
# The shipped model's cool-down (issue 9): a short branch off the all-session run whose learning
# rate decays to zero, the weights that ship. The main run (experiments/train_cpu.sh) trains at
# a constant rate so that every session can continue it; a constant rate leaves the weights
# noisy, and decaying it for the last few percent of the images settles them (the
# warmup-stable-decay schedule). The branch starts from the main run's last checkpoint with a
# fresh optimiser (a 20-step warm-up), follows a cosine to zero over STEPS steps, and never feeds
# back into the main run. Stop the main run first (kill -TERM $(cat RUN.pid)): two runs on two
# cores would each go at a quarter of the speed.
#
# Usage: bash experiments/cooldown.sh     (RUN, OUT, PACK, STEPS, THREADS may be set; LOSS and GW
#        are the loss and its global anchor, default rebalanced + 1 x global (the more accurate
#        cool-down; the shipped model used GW=0.5, for colour: docs/NOTEBOOK.md, fifth session);
#        EXTRA adds `dlnet train` flags)
# Then:  dlnet evaluate --data PACK.split/val.txt --model main=RUN/checkpoints/last.ckpt \
#          --model cooled=OUT/checkpoints/last.ckpt ...   and ship the better one
#        (python experiments/ship_model.py OUT/checkpoints/last.ckpt dlnet-effnet-unet ...).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-../runs/shipped-cpu}
OUT=${OUT:-../runs/cooldown}
PACK=${PACK:-../runs/places128.pack}
STEPS=${STEPS:-700}
DLNET=${DLNET:-.venv/bin/dlnet}
if [ -f "$RUN.pid" ] && kill -0 "$(cat "$RUN.pid")" 2>/dev/null; then
  echo "the main run is still training (pid $(cat "$RUN.pid")): stop it first: kill -TERM $(cat "$RUN.pid")" >&2
  exit 2
fi
# The main run's recipe (experiments/train_cpu.sh), with the schedule of a cool-down and the
# global anchor that gives back the accuracy a constant rate and the rebalanced loss cost.
OMP_NUM_THREADS=${THREADS:-2} nice -n 5 "$DLNET" train --packed "$PACK" --init "$RUN/checkpoints/last.ckpt" \
  --encoder efficientnet_lite0 --decoder unet --size 128 --batch-size 32 --lr 1e-3 --encoder-lr-scale 0.1 \
  --loss "${LOSS:-rebalanced}" --global-weight "${GW:-1}" --warmup-steps 20 --schedule cosine --max-steps "$STEPS" \
  --val-every-steps 350 --out "$OUT" ${EXTRA:-}
