#!/usr/bin/env bash
# Image-caption matching on the demo data: runs after pretrain/demo.sh (which
# writes ${paths.work_dir}/capfilt/capfilt_en.jsonl and the images). A tiny
# random-weight CLIP stands in for the real one; translation is dry-run.
#   PY=.venv/bin/python bash match/demo.sh --set paths.work_dir=demo_work/work --set paths.out_root=demo_work/out
set -euo pipefail
PY="${PY:-python3}"

TINY_CLIP=$("$PY" match/tiny_clip.py "$@" | tail -n 1)
"$PY" match/hard_match.py "$@" --set paths.clip_model="$TINY_CLIP" --set embed.progress=false
"$PY" match/translate_match_train.py "$@" --set translation.backend=dry-run
"$PY" match/generate_match_train.py "$@" --set translation.backend=dry-run
