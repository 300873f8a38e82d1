#!/bin/bash
# A sweep too big for one job, as a job array: task I of N trains share I (mnistjax train --shard I/N),
# each on its own machine with no runtime shared; mnistjax collect merges the shares afterwards.
#
#   sbatch --array=0-7 scripts/slurm_shards.sh --recipe mlp10 --sweep lr=1e-4,3e-4,1e-3,3e-3 --sweep "model.hidden=[[256],[512]]"
#   mnistjax collect shard-*.json > sweep.json        # the same table and JSON as the sweep in one job
#
#SBATCH --job-name=mnistjax-shard
#SBATCH --ntasks=1
#SBATCH --gpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=mnistjax-%A_%a.log
set -euo pipefail
mnistjax train --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}" --json "$@" > "shard-${SLURM_ARRAY_TASK_ID}.json"
