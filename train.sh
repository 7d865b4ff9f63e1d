#!/usr/bin/env bash
# Train a network: edit the variables below, then `./train.sh` (foreground) or
# `./train.sh --detach` (background; follow with `tail -f $LOG`).
# GPUs: CUDA_VISIBLE_DEVICES=0,1 ./train.sh   (unset or empty trains on the CPU)
set -euo pipefail
cd "$(dirname "$0")"

NETWORK=hourglass                       # hourglass | satnet
DATASET=i2d                             # i2d | i3d
MODEL_DIR=./models/my-hg2d3-cab         # checkpoints, CSV log and plots go here
PRETRAINED=""                           # e.g. ./models/model-hg2d3-cab/model,0
LOG=$MODEL_DIR/train.log
EXTRA=(--per-batch-size 16 --lr 1e-4 --lr-epoch-step 20,35,45)   # more train.py flags, e.g. --set net_block=hpm

PY=${PY:-.venv/bin/python}
mkdir -p "$MODEL_DIR"
ARGS=(--network "$NETWORK" --dataset "$DATASET" --prefix "$MODEL_DIR/model" "${EXTRA[@]}")
if [ -n "$PRETRAINED" ]; then ARGS+=(--pretrained "$PRETRAINED"); fi

if [ "${1:-}" = "--detach" ]; then
    nohup "$PY" train.py "${ARGS[@]}" > "$LOG" 2>&1 &
    echo "training in the background (pid $!); log: $LOG"
else
    "$PY" train.py "${ARGS[@]}" 2>&1 | tee "$LOG"
    "$PY" -m tools.plot_log "$MODEL_DIR/model-log.csv"
fi
