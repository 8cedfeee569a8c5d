#!/usr/bin/env bash
# Demo of the translation engine on a small file: the dry-run backend, then the
# real hf and ctranslate2 backends on a tiny random-weight NLLB model (whose
# babble the quality checks reject, so rows fall back to English - by design).
set -euo pipefail
PY=${PY:-python}
OUT=${OUT:-demo_work}
MODEL="$OUT/work/models/tiny-nllb"
"$PY" translate/tiny_model.py --out "$MODEL" --ct2
for backend in dry-run hf ctranslate2; do
  "$PY" translate/translate_file.py "$@" \
    --set file.input=tests/fixtures/translate/sample.jsonl \
    --set "file.output=$OUT/work/translate_demo/sample.$backend.jsonl" \
    --set 'file.fields=[text]' \
    --set translation.backend=$backend \
    --set "translation.model=$MODEL" --set "translation.ct2_model=$MODEL/ct2" \
    --set "translation.cache=$OUT/work/translate_demo/cache.sqlite"
done
