#!/usr/bin/env bash
# The merge of every final training file (run by `make demo` after all other stages).
set -euo pipefail
PY=${PY:-python}
cd "$(dirname "$0")/.."
"$PY" pretrain/merge_train.py "$@"
