#!/usr/bin/env bash
# One short session on a lent GPU (the workplace's device tool): the bench, ShapesWorld training and
# its evaluation, everything written to $OUT (8 files at most come back). Two parts, each under the
# device's 10-minute limit per command: `bash tools/gpu_session.sh bench` (about 4 minutes) and
# `bash tools/gpu_session.sh train` (about 8 minutes); no argument runs both.
#
# Prepare on the development machine, in the repository root (the device image has torch 2.11,
# torchvision, timm, huggingface_hub, safetensors, regex, tqdm, but not open_clip):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl open_clip_torch==3.3.0 ftfy wcwidth
# then call the device tool with carry [".whl"] and the command `bash tools/gpu_session.sh`.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-_build/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"

PART=${1:-all}
if [[ $PART == bench || $PART == all ]]; then
# 1. throughput: Grad-ECLIP bf16 at batch 256 against one at a time, every method, and deletion +
#    insertion over 512 generated JPEGs against the per-image loop (32 images)
timeout 240 python3 -m gradeclip_lib bench --device cuda --methods all --evaluation --eval-images 512 \
    --out "$OUT/bench_gpu.json" \
    2>&1 | grep -v "^WARNING:root" | tee "$OUT/bench.txt" || echo "bench stopped early" | tee -a "$OUT/bench.txt"

fi
if [[ $PART == train || $PART == all ]]; then
# 2. the ShapesWorld model, trained from scratch with the documented command and seed
timeout 420 python3 -m gradeclip_lib.synthetic train --out "$OUT/shapes" --seed 0 --workers 14 \
    2>&1 | tr '\r' '\n' | grep -v "^training: .*it/s\]$" | tail -40 | tee "$OUT/train.log"

# 3. what it learnt, on fresh seeds
python3 -m gradeclip_lib.synthetic evaluate --model-dir "$OUT/shapes" --n 300 | tee "$OUT/eval.json"
fi
