#!/usr/bin/env bash
# Train a network with train.py: edit the variables below (or set them in the
# environment), then run `./train.sh`. `./train.sh --help` says more.
set -euo pipefail
cd "$(dirname "$0")"

NETWORK=${NETWORK:-hourglass}                    # hourglass | satnet
DATASET=${DATASET:-i2d}                          # i2d | i3d
MODEL_DIR=${MODEL_DIR:-./models/my-hg2d3-cab}    # checkpoints, CSV log, plots, train.log
PRETRAINED=${PRETRAINED:-}                       # e.g. ./models/model-hg2d3-cab/model,0
PY=${PY:-.venv/bin/python}
EXTRA=(--per-batch-size 16 --lr 1e-4 --lr-epoch-step 20,35,45)   # more train.py flags

usage() {
    cat <<EOF
usage: ./train.sh [--detach] [--resume | --overwrite] [--help]

Runs train.py with the variables at the top of train.sh (or from the environment):
  NETWORK=$NETWORK  DATASET=$DATASET  MODEL_DIR=$MODEL_DIR
  PRETRAINED=${PRETRAINED:-(none)}  PY=$PY
  EXTRA=(${EXTRA[*]})
The run writes MODEL_DIR/model-*.params, model-log.csv (+ .png), model-config.json and
appends its output to MODEL_DIR/train.log.

  --detach     run in the background (follow with: tail -f MODEL_DIR/train.log)
  --resume     continue the run in MODEL_DIR where it stopped
  --overwrite  start over in a MODEL_DIR that holds a run (deletes its files)
  --help       print this and start nothing

Devices: CUDA_VISIBLE_DEVICES=0,1 ./train.sh   (unset: every GPU found; -1: the CPU)
EOF
}

DETACH=0
RUN_FLAGS=()
for arg in "$@"; do
    case "$arg" in
        --detach) DETACH=1 ;;
        --resume|--overwrite) RUN_FLAGS+=("$arg") ;;
        --help|-h) usage; exit 0 ;;
        *) echo "train.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    esac
done

ARGS=(--network "$NETWORK" --dataset "$DATASET" --prefix "$MODEL_DIR/model" "${EXTRA[@]}")
if [ -n "$PRETRAINED" ]; then ARGS+=(--pretrained "$PRETRAINED"); fi
ARGS+=("${RUN_FLAGS[@]}")
mkdir -p "$MODEL_DIR"
LOG=$MODEL_DIR/train.log

if [ "$DETACH" = 1 ]; then
    START=$(wc -c < "$LOG" 2>/dev/null || echo 0)
    nohup "$PY" train.py "${ARGS[@]}" >> "$LOG" 2>&1 &
    PID=$!
    # Wait until the run has passed its checks (it logs its plan) or ended.
    for _ in $(seq 1 600); do
        if ! kill -0 "$PID" 2>/dev/null; then
            wait "$PID" && CODE=0 || CODE=$?
            tail -c +"$((START + 1))" "$LOG" | grep -v '^\s*$' | tail -n 5 >&2
            echo "train.sh: the run ended at once (exit $CODE); nothing runs in the background" >&2
            exit "$CODE"
        fi
        if tail -c +"$((START + 1))" "$LOG" | grep -q 'training ends at step'; then
            break
        fi
        sleep 0.2
    done
    echo "training in the background (pid $PID); log: $LOG"
else
    "$PY" train.py "${ARGS[@]}" 2>&1 | tee -a "$LOG"
    "$PY" -m tools.plot_log "$MODEL_DIR/model-log.csv"
fi
