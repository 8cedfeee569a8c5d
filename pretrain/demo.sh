#!/usr/bin/env bash
# BLIP Web CapFilt on the fixtures: filter -> download (from a loopback server)
# -> generate (English) -> translate -> generate (final).
#   PY=.venv/bin/python bash pretrain/demo.sh --set paths.raw_root=tests/fixtures/raw \
#       --set paths.work_dir=demo_work/work --set paths.out_root=demo_work/out
set -euo pipefail
PY=${PY:-python}
cd "$(dirname "$0")/.."

source pretrain/demo_common.sh

echo "== capfilt 1/5: filter"
"$PY" pretrain/filter.py "${DEMO[@]}" "$@"

echo "== capfilt 2/5: download_images (serving <raw_root>/web on 127.0.0.1:18080)"
with_web_server "$PY" pretrain/download_images.py "${DEMO[@]}" "$@"

echo "== capfilt 3/5: generate_train (English intermediate)"
"$PY" pretrain/generate_train.py "${DEMO[@]}" --set generate.step=english "$@"

echo "== capfilt 4/5: translate_train"
"$PY" pretrain/translate_train.py "${DEMO[@]}" "$@"

echo "== capfilt 5/5: generate_train (final)"
"$PY" pretrain/generate_train.py "${DEMO[@]}" --set generate.step=final "$@"
