#!/usr/bin/env bash
# The shipped model's training on the CPU, all session long (issue 9): start it at the beginning
# of every session. It runs in the background, niced, in a run folder outside the repository, and
# continues from where the last session stopped (RUN/checkpoints/last.ckpt), or on a new machine
# from INIT (default: the shipped default model). Pause it while benchmarking:
#   kill -STOP $(cat RUN.pid)   ...   kill -CONT $(cat RUN.pid)
# Stop it (the final state is saved):  kill -TERM $(cat RUN.pid)   (a background job ignores -INT)
#
# The shipped default is the fresh lineage from ImageNet weights begun in the seventh session
# (docs/NOTEBOOK.md): 1,200,000 images in four cosines, shipped in the tenth session. A new run
# continues it from the shipped weights (INIT) with its last recipe: one cosine of STEPS steps
# (a session's worth) of rebalanced + GW x global, fresh Adam. The tenth session's cosine of it
# (../runs/s27-reb, 288,000 images) did not beat the shipped model: more of the same recipe has
# stopped paying on these photos (docs/NOTEBOOK.md, tenth session); change data, encoder or recipe first.
# Since the eleventh session the long run is on the new photo set (issue 30) with hint inputs; since
# the twelfth with the hints at the skip connections too (--hint-skips). Since the fourteenth the
# shipped model is the mean of the default and such a run's end (a weight soup, experiments/soup.py):
# a session's run starts from the shipped model and ends in a cosine fitted to the session, then
# its soups with the shipped model are scored on validation (docs/NOTEBOOK.md, fourteenth session):
#   RUN=RUNS/NAME PACK=NEWPACK EXTRA="--hints --hint-skips --val-every-steps 200 --max-time 00:01:40:00" \
#     bash experiments/train_cpu.sh
# (NEWPACK and how it was made: docs/RESULTS.md).
#
# Since the fifteenth session a Lite2 lineage may run instead (the encoder probe's winner at equal
# images, docs/RESULTS.md), from the probe's end:
#   RUN=RUNS/lite2 ENCODER=efficientnet_lite2 INIT=RUNS/probe-efficientnet_lite2/checkpoints/last.ckpt \
#     PACK=NEWPACK STEPS=30000 EXTRA="--hints --hint-skips --val-every-steps 500" bash experiments/train_cpu.sh
# The nineteenth session cooled it in a branch (RUNS/lite2-cool: INIT=RUNS/lite2/checkpoints/last.ckpt,
# EXTRA adds "--lr 6e-4 --warmup-steps 100 --max-time 00:02:15:00"); continue either (docs/NOTEBOOK.md).
#
# Usage: bash experiments/train_cpu.sh            (RUN, PACK, INIT, ENCODER, DATA, LOSS, GW, STEPS, SEED, THREADS may be set;
#        EXTRA: more flags for a new run, e.g. EXTRA="--hints --max-time 00:02:30:00")
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
  # The lineage's recipe (docs/NOTEBOOK.md, seventh to ninth sessions): U-Net decoder, encoder at
  # a tenth of the decoder's learning rate, the rebalanced loss (the only one that moved hue
  # spread) anchored by 0.25 x global (accuracy), a cosine per session ending at rate zero (the
  # checkpoint at its end is the one to ship; a constant rate never ends on a shippable model).
  start=(--packed "$PACK" --init "${INIT:-dlnet-effnet-unet}" --encoder "${ENCODER:-efficientnet_lite0}" --decoder unet
         --size 128 --batch-size 32 --lr 1e-3 --encoder-lr-scale 0.1 --schedule cosine --warmup-steps 50
         --max-steps "${STEPS:-9000}" --loss "${LOSS:-rebalanced}" --global-weight "${GW:-0.25}"
         --seed "${SEED:-5}" --val-every-steps 625 ${EXTRA:-})
fi
OMP_NUM_THREADS=${THREADS:-2} nohup nice -n 5 "$DLNET" train "${start[@]}" --out "$RUN" >>"$RUN.log" 2>&1 &
echo $! > "$RUN.pid"
echo "training in the background: pid $!, log $RUN.log, run $RUN"
