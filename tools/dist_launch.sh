#!/usr/bin/env bash
# Shared torchrun launcher of tools/dist_train.sh and tools/dist_test.sh.
#   tools/dist_launch.sh SCRIPT GPUS [SCRIPT args...]
# Runs tools/SCRIPT with the given arguments in GPUS processes per node.
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1).
set -e
if [ $# -lt 2 ]; then
    echo "usage: $0 SCRIPT GPUS [SCRIPT options...]" >&2
    exit 2
fi
SCRIPT=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

# One-line errors for values torchrun would reject with a traceback.
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
if ! is_uint "$GPUS" || [ "$GPUS" -lt 1 ]; then
    echo "error: GPUS must be a positive integer (processes per node), got '$GPUS'" >&2
    exit 2
fi
if ! is_uint "$NNODES" || [ "$NNODES" -lt 1 ]; then
    echo "error: NNODES must be a positive integer, got '$NNODES'" >&2
    exit 2
fi
if ! is_uint "$NODE_RANK" || [ "$NODE_RANK" -ge "$NNODES" ]; then
    echo "error: NODE_RANK must be an integer in [0, NNODES-1] = [0, $((NNODES - 1))]," \
        "got '$NODE_RANK'" >&2
    exit 2
fi
if ! is_uint "$PORT" || [ "$PORT" -lt 1 ] || [ "$PORT" -gt 65535 ]; then
    echo "error: PORT must be an integer in [1, 65535], got '$PORT'" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/$SCRIPT" \
    "$@"
