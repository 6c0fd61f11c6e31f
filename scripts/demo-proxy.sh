#!/usr/bin/env bash
# The proxy's main job on one machine, no internet: a stand-in Dify (web, api and plugin daemon
# played by the project's test server) behind `difyctl proxy` with a self-signed certificate.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

HTTP_PORT=${HTTP_PORT:-8080}
HTTPS_PORT=${HTTPS_PORT:-8443}
echo "building difyctl and the test server (release; a few minutes the first time)..."
cargo build --release --quiet -p difyctl -p difyctl-testserver --bins

state=$(mktemp -d)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT INT TERM

./target/release/testserver web=127.0.0.1:13000 api=127.0.0.1:15001 plugin_daemon=127.0.0.1:15002 &
pids+=($!)
./target/release/difyctl --state-dir "$state" proxy \
  --upstream-web 127.0.0.1:13000 --upstream-api 127.0.0.1:15001 --upstream-plugin 127.0.0.1:15002 \
  --http "127.0.0.1:$HTTP_PORT" --https "127.0.0.1:$HTTPS_PORT" &
pids+=($!)
sleep 1

cat <<MSG

difyctl proxy is serving https://localhost:$HTTPS_PORT (self-signed certificate: curl -k).
Try:
  curl -k https://localhost:$HTTPS_PORT/                        # web
  curl -k https://localhost:$HTTPS_PORT/console/api/apps        # api (JSON echo of what api received)
  curl -k -N "https://localhost:$HTTPS_PORT/v1/sse?n=10&gap_ms=500"  # SSE from api, one event every 500 ms
  curl -k https://localhost:$HTTPS_PORT/e/hook-1                # plugin daemon, with Dify-Hook-Url
  curl -i http://localhost:$HTTP_PORT/apps                      # 301 to https
Ctrl-C stops the demo.
MSG
wait
