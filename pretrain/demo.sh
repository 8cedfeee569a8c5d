#!/usr/bin/env bash
# BLIP Web CapFilt on the fixtures: filter -> download (from a loopback server)
# -> generate (English) -> translate -> generate (final).
#   PY=.venv/bin/python bash pretrain/demo.sh --set paths.raw_root=tests/fixtures/raw \
#       --set paths.work_dir=demo_work/work --set paths.out_root=demo_work/out
set -euo pipefail
PY=${PY:-python}
cd "$(dirname "$0")/.."

# The fixture file has a few dozen captions, so the phrase thresholds are scaled
# down; the dry-run backend needs no model. "$@" comes last and wins.
DEMO=(--set filter.min_captions=3 --set filter.max_captions=4 --set filter.n_process=1
      --set download.threads=4 --set download.backoff=0.05 --set download.progress=false
      --set translation.backend=dry-run --set translation.progress=false)

echo "== capfilt 1/5: filter"
"$PY" pretrain/filter.py "${DEMO[@]}" "$@"

echo "== capfilt 2/5: download_images (serving <raw_root>/web on 127.0.0.1:18080)"
"$PY" pretrain/serve_web.py "$@" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', 18080), 0.2)" 2>/dev/null; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "demo: the web server did not start (port 18080 in use?)" >&2; exit 1; }
  sleep 0.1
done
"$PY" pretrain/download_images.py "${DEMO[@]}" "$@"
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
trap - EXIT

echo "== capfilt 3/5: generate_train (English intermediate)"
"$PY" pretrain/generate_train.py "${DEMO[@]}" --set generate.step=english "$@"

echo "== capfilt 4/5: translate_train"
"$PY" pretrain/translate_train.py "${DEMO[@]}" "$@"

echo "== capfilt 5/5: generate_train (final)"
"$PY" pretrain/generate_train.py "${DEMO[@]}" --set generate.step=final "$@"
