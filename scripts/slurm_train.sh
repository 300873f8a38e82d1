#!/bin/bash
# One mnistjax run or sweep over several hosts: one process per host, JAX's distributed runtime
# (jax.distributed finds the job's hosts from SLURM's variables). Process 0 alone prints the result.
#
#   sbatch scripts/slurm_train.sh --recipe cnn10 --sweep lr=1e-3,3e-3 --sweep opt.weight_decay=0,0.05 --seeds 0,1
#
#SBATCH --job-name=mnistjax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-task=1
#SBATCH --time=01:00:00
#SBATCH --output=mnistjax-%j.log
set -euo pipefail
srun mnistjax train --distributed auto --json "$@" > "result-${SLURM_JOB_ID}.json"
