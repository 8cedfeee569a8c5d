# Sourced by pretrain/demo.sh and translate/scale_demo.sh: the CapFilt demo
# settings and the loopback server for <raw_root>/web.

# The fixture file has a few dozen captions, so the phrase thresholds are scaled
# down; the dry-run backend needs no model. "$@" comes last and wins.
DEMO=(--set filter.min_captions=3 --set filter.max_captions=4 --set filter.n_process=1
      --set download.threads=4 --set download.backoff=0.05 --set download.progress=false
      --set translation.backend=dry-run --set translation.progress=false)

# The demo's own arguments (--set paths.*), as given to the sourcing script.
DEMO_ARGS=("$@")

# with_web_server CMD...: serve <raw_root>/web on 127.0.0.1:18080 while CMD runs.
with_web_server() {
  "$PY" pretrain/serve_web.py "${DEMO_ARGS[@]}" &
  local pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT
  for _ in $(seq 50); do
    if "$PY" -c "import socket; socket.create_connection(('127.0.0.1', 18080), 0.2)" 2>/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || { echo "demo: the web server did not start (port 18080 in use?)" >&2; exit 1; }
    sleep 0.1
  done
  local rc=0
  "$@" || rc=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  trap - EXIT
  return $rc
}
