#!/usr/bin/env bash
# Run a sharded step on SLURM: an array job of shards (array index = shard
# index), then the merge as a job that depends on all of them.
#
#   common/slurm/submit.sh NUM_SHARDS STEP [STEP ARGS ...]
#
#   common/slurm/submit.sh 8 mscoco.translate --set translation.backend=ctranslate2
#   MAX_PARALLEL=4 SHARD_SBATCH_ARGS="--partition=gpu --gres=gpu:a100:1" \
#       common/slurm/submit.sh 16 capfilt.translate
#   SHARD_SBATCH_ARGS="--gres=none --cpus-per-task=4" common/slurm/submit.sh 8 capfilt.download
#
# Usually called by `python -m common launch STEP --set launch.executor=slurm`,
# which submits only the shards not done yet (ARRAY=0,3,5; ARRAY set and empty:
# only the merge job, without a dependency). The jobs start in the submit
# directory (relative paths in the arguments keep their meaning). PY names the
# python of the environment on the compute nodes (default: python); LOG_DIR the
# folder for the job logs (default: slurm_logs). If a shard fails, SLURM
# cancels the merge job (--kill-on-invalid-dep=yes) instead of leaving it
# pending forever; the failed task's log names the shard, and submitting again
# runs only the shards not done. N is at most the cluster's MaxArraySize - 1
# (scontrol show config; often 1000). All shards share translation.cache: keep
# it on a file system where SQLite locking works (a local or Lustre/GPFS path,
# not NFS), or give each shard "" by adding --set translation.cache=.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
N=$1; shift
case "$N" in ''|*[!0-9]*) echo "error: NUM_SHARDS must be a positive integer, got '$N'" >&2; exit 2;; esac
if [ "$N" -lt 1 ]; then echo "error: NUM_SHARDS must be >= 1" >&2; exit 2; fi
case "$1" in ''|-*) echo "error: expected a step id (python -m common steps), got '$1'" >&2; exit 2;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LOG_DIR=${LOG_DIR:-slurm_logs}
mkdir -p "$LOG_DIR"
EXPORT="ALL,NUM_SHARDS=$N,MBLIP_REPO=$REPO"
ARRAY=${ARRAY-0-$((N - 1))}
DEPEND=()
JOB=""
if [ -n "$ARRAY" ]; then
    # shellcheck disable=SC2086  # the *_SBATCH_ARGS are meant to split into options
    JOB=$(sbatch --parsable --array="$ARRAY${MAX_PARALLEL:+%$MAX_PARALLEL}" --export="$EXPORT" \
          --output="$LOG_DIR/%x-%A_%a.out" ${SHARD_SBATCH_ARGS:-} "$HERE/shard.sbatch" "$@")
    JOB=${JOB%%;*}   # --parsable prints "jobid[;cluster]"
    DEPEND=(--dependency=afterok:"$JOB" --kill-on-invalid-dep=yes)
    echo "submitted shards: job $JOB (array $ARRAY)"
else
    echo "every shard is done: submitting the merge only"
fi
# shellcheck disable=SC2086
DEP=$(sbatch --parsable ${DEPEND[@]+"${DEPEND[@]}"} --export="$EXPORT" --output="$LOG_DIR/%x-%j.out" \
      ${COMBINE_SBATCH_ARGS:-} "$HERE/combine.sbatch" "$@")
DEP=${DEP%%;*}
echo "combine: job $DEP${JOB:+ (after all shards succeed)}"
echo "logs: $LOG_DIR/; watch: squeue -j ${JOB:+$JOB,}$DEP"
