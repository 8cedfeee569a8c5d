#!/usr/bin/env bash
# Image-caption matching on the demo data: runs after pretrain/demo.sh (which
# writes ${paths.work_dir}/capfilt/capfilt_en.jsonl and the images). A tiny
# random-weight CLIP stands in for the real one; translation is dry-run.
#   PY=.venv/bin/python bash match/demo.sh --set paths.work_dir=demo_work/work --set paths.out_root=demo_work/out
set -euo pipefail
PY="${PY:-python3}"
cd "$(dirname "$0")/.."

# "$@" comes after these, so it wins (e.g. translation.backend=ctranslate2).
DEMO=(--set translation.backend=dry-run --set translation.progress=false --set embed.progress=false)

echo "== match 0/3: tiny CLIP (random weights, BPE vocabulary from the captions)"
TINY_CLIP=$("$PY" match/tiny_clip.py "$@" | tail -n 1)
echo "== match 1/3: hard_match (embeddings, FAISS, negatives)"
"$PY" match/hard_match.py "${DEMO[@]}" "$@" --set paths.clip_model="$TINY_CLIP"
echo "== match 2/3: translate_match_train"
"$PY" match/translate_match_train.py "${DEMO[@]}" "$@"
echo "== match 3/3: generate_match_train"
"$PY" match/generate_match_train.py "${DEMO[@]}" "$@"
