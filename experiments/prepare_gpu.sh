#!/usr/bin/env bash
# Make the working tree ready to travel to a lent GPU (run here, before the first device call):
#   .whl/     kornia + kornia_rs wheels for the device's Python 3.12 (it has no kornia, no registry)
#   .packed/  the run's train+val photos as 128 px WebP, as many as fit the room left under the
#             64 MiB that travels with the tracked files (both folders are git-ignored).
# Then: run(command="OUT=$OUT bash experiments/train_gpu.sh", carry=[".whl", ".packed"])
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
DLNET=${DLNET:-.venv/bin/dlnet}
PIP=${PIP:-.venv/bin/pip}
mkdir -p .whl .packed
ls .whl/kornia-*.whl .whl/kornia_rs-*.whl >/dev/null 2>&1 ||
  "$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl kornia kornia_rs
# What travels besides the pack: tracked files, untracked files git does not ignore, the wheels.
others=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | awk '$2=="total"{s+=$1} END{print s}')
wheels=$(du -cb .whl | tail -n 1 | cut -f1)
room=$(( (64 * 1024 * 1024 - others - wheels) / 1024 / 1024 - 2 ))  # 2 MiB to spare
echo "tree $(( others / 1024 / 1024 )) MiB + wheels $(( wheels / 1024 / 1024 )) MiB: $room MiB left for photos"
[ "$room" -gt 4 ] || { echo "no room for photos: ship fewer or smaller models" >&2; exit 1; }
"$DLNET" pack --data "$DATA/miniplaces-val" --extra-train "$DATA/miniplaces-train" -o .packed/places128.pack \
  --format webp --quality 60 --max-mib "$room" --overwrite
