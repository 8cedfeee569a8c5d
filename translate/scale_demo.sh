#!/usr/bin/env bash
# Scale-out on the fixtures: the CapFilt chain with download and translation
# each run by translate/scale.py as 2 CPU workers (shards merged), MSCOCO's
# translation as 3 workers, and, when ray is installed, the MSCOCO intermediate
# through translate/ray_translate.py on a local Ray instance (checked equal).
#   PY=.venv/bin/python bash translate/scale_demo.sh --set paths.raw_root=tests/fixtures/raw \
#       --set paths.work_dir=demo_work/work --set paths.out_root=demo_work/out
set -euo pipefail
PY=${PY:-python}
cd "$(dirname "$0")/.."

source pretrain/demo_common.sh
TWO=(--set 'scale.devices=[cpu,cpu]')

echo "== scale 1/6: capfilt filter"
"$PY" pretrain/filter.py "${DEMO[@]}" "$@"

echo "== scale 2/6: capfilt download_images, 2 workers (serving <raw_root>/web on 127.0.0.1:18080)"
with_web_server "$PY" translate/scale.py "${TWO[@]}" -- pretrain/download_images.py "${DEMO[@]}" "$@"

echo "== scale 3/6: capfilt generate_train (English intermediate)"
"$PY" pretrain/generate_train.py "${DEMO[@]}" --set generate.step=english "$@"

echo "== scale 4/6: capfilt translate_train, 2 workers"
"$PY" translate/scale.py "${TWO[@]}" -- pretrain/translate_train.py "${DEMO[@]}" "$@"
"$PY" pretrain/generate_train.py "${DEMO[@]}" --set generate.step=final "$@"

echo "== scale 5/6: mscoco translate_train, 3 workers"
"$PY" tasks/mscoco/generate_train.py "$@"
"$PY" translate/scale.py --set 'scale.devices=[cpu,cpu,cpu]' -- tasks/mscoco/translate_train.py \
    --set translation.backend=dry-run --set translation.progress=false "$@"
"$PY" tasks/mscoco/generate_train.py "$@"

echo "== scale 6/6: the mscoco intermediate on a local Ray instance"
if "$PY" -c "import ray.data" 2>/dev/null; then
  WORK=$("$PY" - "$@" <<'PYEOF'
import sys
from tasks.mscoco.settings import CONFIG, DEFAULTS, intermediate_paths
from common.config import parse_args
cfg = parse_args("", DEFAULTS, CONFIG, sys.argv[1:])
print(intermediate_paths(cfg)[0].parent)
PYEOF
)
  "$PY" translate/ray_translate.py --set "file.input=$WORK/captions_en.jsonl" --set "file.output=$WORK/captions_ray.jsonl" \
      --set 'file.fields=[caption]' --set file.assign_languages=true --set file.seed=0 \
      --set translation.backend=dry-run --set translation.progress=false --set translation.cache= \
      --set ray.num_cpus=2 --set ray.actors=2 --set ray.batch_rows=4 "$@" 2>&1 | grep -v "^\s*$" | tail -2
  cmp "$WORK/captions_ray.jsonl" "$WORK/captions_translated.jsonl" && echo "ray output == sharded output"
else
  echo "ray is not installed (pip install -e '.[ray]'): skipped"
fi
echo "scale demo finished"
