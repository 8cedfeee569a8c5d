#!/usr/bin/env bash
# Run a sharded step on SLURM: an array job of NUM_SHARDS tasks (array index =
# shard index), then the combine step as a job that depends on all of them.
#
#   translate/slurm/submit.sh NUM_SHARDS SCRIPT [SCRIPT ARGS ...]
#
#   translate/slurm/submit.sh 8 tasks/mscoco/translate_train.py --set translation.backend=ctranslate2
#   MAX_PARALLEL=4 SHARD_SBATCH_ARGS="--partition=gpu --gres=gpu:a100:1" \
#       translate/slurm/submit.sh 16 pretrain/translate_train.py
#   SHARD_SBATCH_ARGS="--gres=none --cpus-per-task=4" translate/slurm/submit.sh 8 pretrain/download_images.py
#
# The jobs start in the submit directory (relative paths in the arguments keep
# their meaning). PY names the python of the environment on the compute nodes
# (default: python); LOG_DIR the folder for the job logs (default: slurm_logs).
# If a shard fails, SLURM cancels the combine job (--kill-on-invalid-dep=yes)
# instead of leaving it pending forever; the failed task's log names the shard.
# N is at most the cluster's MaxArraySize - 1 (scontrol show config; often 1000).
# All shards share translation.cache: keep it on a file system where SQLite
# locking works (a local or Lustre/GPFS path, not NFS), or give each shard ""
# by adding --set translation.cache=. A failed shard can be rerun alone with
#   sbatch --array=<i> --export=ALL,NUM_SHARDS=N translate/slurm/shard.sbatch SCRIPT ARGS
# then the combine job: sbatch --export=ALL,NUM_SHARDS=N translate/slurm/combine.sbatch SCRIPT ARGS
# (from the repository root; submit.sh also passes MBLIP_REPO, the repository path).
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
N=$1; shift
case "$N" in ''|*[!0-9]*) echo "error: NUM_SHARDS must be a positive integer, got '$N'" >&2; exit 2;; esac
if [ "$N" -lt 1 ]; then echo "error: NUM_SHARDS must be >= 1" >&2; exit 2; fi
if [ ! -f "$1" ]; then echo "error: script not found: $1" >&2; exit 2; fi
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LOG_DIR=${LOG_DIR:-slurm_logs}
mkdir -p "$LOG_DIR"
EXPORT="ALL,NUM_SHARDS=$N,MBLIP_REPO=$REPO"
ARRAY="0-$((N - 1))${MAX_PARALLEL:+%$MAX_PARALLEL}"
# shellcheck disable=SC2086  # the *_SBATCH_ARGS are meant to split into options
JOB=$(sbatch --parsable --array="$ARRAY" --export="$EXPORT" --output="$LOG_DIR/%x-%A_%a.out" ${SHARD_SBATCH_ARGS:-} \
      "$HERE/shard.sbatch" "$@")
JOB=${JOB%%;*}   # --parsable prints "jobid[;cluster]"
# shellcheck disable=SC2086
DEP=$(sbatch --parsable --dependency=afterok:"$JOB" --kill-on-invalid-dep=yes --export="$EXPORT" --output="$LOG_DIR/%x-%j.out" ${COMBINE_SBATCH_ARGS:-} \
      "$HERE/combine.sbatch" "$@")
DEP=${DEP%%;*}
echo "submitted shards: job $JOB (array $ARRAY); combine: job $DEP (after all shards succeed)"
echo "logs: $LOG_DIR/; watch: squeue -j $JOB,$DEP"
