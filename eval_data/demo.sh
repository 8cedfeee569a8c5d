#!/usr/bin/env bash
# Run every evaluation-data converter; "$@" carries the --set overrides
# (make demo passes paths.raw_root / work_dir / out_root for the fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-python3}"
for bench in xgqa xvnli marvl xflickrco xm3600 maxm pope chair; do
  echo "== eval_data/$bench"
  "$PY" "eval_data/$bench/convert.py" --config configs/eval_data.yaml "$@"
done
