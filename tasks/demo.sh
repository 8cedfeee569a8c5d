#!/usr/bin/env bash
# Every task source on the fixtures, in order (dry-run translation):
#   PY=.venv/bin/python bash tasks/demo.sh --set paths.raw_root=tests/fixtures/raw \
#     --set paths.work_dir=demo_work/work --set paths.out_root=demo_work/out
set -euo pipefail
PY=${PY:-python}
cd "$(dirname "$0")/.."
T=(--set translation.backend=dry-run --set translation.progress=false)

echo "== mscoco"
"$PY" tasks/mscoco/generate_train.py "$@"
"$PY" tasks/mscoco/translate_train.py "${T[@]}" "$@"
"$PY" tasks/mscoco/generate_train.py "$@"
"$PY" tasks/mscoco/generate_eval.py "$@"

echo "== vqav2"
"$PY" tasks/vqa/generate_train.py "$@"
"$PY" tasks/vqa/translate_train.py "${T[@]}" "$@"
"$PY" tasks/vqa/generate_train.py "$@"
"$PY" tasks/vqa/generate_eval.py "$@"

echo "== a-okvqa"
"$PY" tasks/aokvqa/generate_train.py "$@"

echo "== llava"
"$PY" tasks/llava/generate_train.py "$@"
"$PY" tasks/llava/translate_train.py "${T[@]}" "$@"
"$PY" tasks/llava/generate_train.py "$@"

echo "== imagenet"
"$PY" tasks/imagenet/translate_train.py "${T[@]}" "$@"
"$PY" tasks/imagenet/generate_train.py "$@"
echo "tasks demo finished"
