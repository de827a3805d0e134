#!/usr/bin/env bash
# Distributed testing with torchrun (OpenMMLab convention).
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1).
# Without CUDA the GPUS processes run on the CPU over gloo.
# The torchrun call is shared with the other dist script: tools/dist_launch.sh.
set -e
# GPUS may also come from the environment (as for slurm_train.sh): GPUS=2 $0 CONFIG CHECKPOINT
if [ $# -eq 2 ] && [ -n "${GPUS:-}" ]; then
    set -- "$@" "$GPUS"
fi
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py options...]" >&2
    echo "env: NNODES NODE_RANK PORT MASTER_ADDR" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
exec bash "$(dirname "$0")/dist_launch.sh" test.py "$GPUS" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
