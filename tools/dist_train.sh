#!/usr/bin/env bash
# Distributed training with torchrun (OpenMMLab convention).
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1).
# Without CUDA the GPUS processes train on the CPU over gloo.
# The torchrun call is shared with the other dist script: tools/dist_launch.sh.
set -e
# GPUS may also come from the environment (as for slurm_train.sh): GPUS=2 $0 CONFIG
if [ $# -eq 1 ] && [ -n "${GPUS:-}" ]; then
    set -- "$@" "$GPUS"
fi
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [train.py options...]" >&2
    echo "env: NNODES NODE_RANK PORT MASTER_ADDR" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$GPUS" "$CONFIG" --launcher pytorch "$@"
