#!/usr/bin/env bash
# difyctl's main job on one machine with no internet: `difyctl up` starts a Dify-shaped stack
# (stand-in images built from the project's own test server: web, api, worker, plugin_daemon,
# db, redis), gets a certificate from Pebble (a local ACME CA standing in for Let's Encrypt)
# through HTTP-01 on its own port, and serves it all over HTTPS. Ctrl-C stops difyctl and
# removes the stack, its volumes and Pebble.
# Needs: Docker (running), pebble (installed when missing), openssl, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_PORT=${HTTP_PORT:-8080}
HTTPS_PORT=${HTTPS_PORT:-8443}
DOMAIN=${DOMAIN:-dify.demo.test}
# A project of its own per run: a demo left running elsewhere is not touched.
PROJECT=difyctl-demo-$$

for pair in "HTTP_PORT:$HTTP_PORT" "HTTPS_PORT:$HTTPS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/${pair#*:}") 2>/dev/null; then
    echo "port ${pair#*:} is in use: run with another, e.g. ${pair%%:*}=$((${pair#*:} + 1000)) make demo" >&2
    exit 1
  fi
done

{ command -v pebble && command -v pebble-challtestsrv; } >/dev/null 2>&1 || {
  echo "installing pebble..." >&2
  apt-get install -y -qq pebble >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq pebble >/dev/null; }
}
echo "building difyctl and the stand-in image (release; a few minutes the first time)..."
cargo build --release --quiet -p difyctl --bin difyctl
./scripts/test-image.sh
DIFYCTL=$PWD/target/release/difyctl

work=$(mktemp -d /tmp/difyctl-demo.XXXXXX)
pids=()
cleanup() {
  trap - EXIT INT TERM
  # Run whole however the demo was started: with `make demo | tee log`, Ctrl-C kills tee
  # first, and a write to the dead pipe must not end the cleanup (SIGPIPE, set -e).
  trap '' PIPE
  set +e
  { echo; echo "stopping: difyctl, the stack (down -v), Pebble"; } >&2 2>/dev/null
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  (cd "$work/dify" && "$DIFYCTL" -p "$PROJECT" --state-dir "$work/state" down -v --timeout 2 >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT
# Ctrl-C is how the demo ends: a clean exit, not make's "Error 130".
trap 'cleanup; exit 0' INT TERM

# Pebble: its own TLS certificate, a DNS server that answers 127.0.0.1 for every name, and
# validation against difyctl's ports.
source scripts/pebble.sh
start_pebble "$work" "$HTTP_PORT" "$HTTPS_PORT"

# A stack shaped like Dify's, played by the stand-in image.
mkdir -p "$work/dify"
hc() { echo "{test: [\"CMD\", \"/testserver\", \"probe\", \"http://127.0.0.1:$1/health\"], interval: 5s, timeout: 2s, retries: 30}"; }
cat > "$work/dify/docker-compose.yaml" <<YAML
services:
  db_postgres:
    image: difyctl-testserver:test
    command: ["db=0.0.0.0:5432"]
    volumes: ["./volumes/db:/data"]
    healthcheck: $(hc 5432)
    restart: always
  redis:
    image: difyctl-testserver:test
    command: ["redis=0.0.0.0:6379"]
    healthcheck: $(hc 6379)
    restart: always
  api:
    image: difyctl-testserver:test
    command: ["api=0.0.0.0:5001"]
    environment:
      CONSOLE_API_URL: \${CONSOLE_API_URL:-}
      NEXT_PUBLIC_SOCKET_URL: \${NEXT_PUBLIC_SOCKET_URL:-ws://localhost}
    healthcheck: $(hc 5001)
    depends_on:
      db_postgres: {condition: service_healthy}
      redis: {condition: service_healthy}
    restart: always
  worker:
    image: difyctl-testserver:test
    command: ["worker=0.0.0.0:5001"]
    depends_on: [api]
    restart: always
  plugin_daemon:
    image: difyctl-testserver:test
    command: ["plugin_daemon=0.0.0.0:5002"]
    depends_on:
      db_postgres: {condition: service_healthy}
    restart: always
  web:
    image: difyctl-testserver:test
    command: ["web=0.0.0.0:3000"]
    depends_on: [api]
    restart: always
YAML

cd "$work/dify"
"$DIFYCTL" -p "$PROJECT" --state-dir "$work/state" up --domain "$DOMAIN" \
  --http "127.0.0.1:$HTTP_PORT" --https "127.0.0.1:$HTTPS_PORT" \
  --acme-directory "https://localhost:$ACME/dir" --acme-ca-root "$PEBBLE_CERT" --email ops@example.com &
pids+=($!)
for _ in $(seq 120); do
  [ -n "$(ls "$work/state/certs" 2>/dev/null)" ] && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "difyctl up stopped; see its output above" >&2; exit 1; }
  sleep 0.5
done
curl -s --insecure "https://127.0.0.1:$MGMT/roots/0" > "$work/pebble-root.pem"
R="--resolve $DOMAIN:$HTTPS_PORT:127.0.0.1 --cacert $work/pebble-root.pem"

cat <<MSG

difyctl up is serving https://$DOMAIN:$HTTPS_PORT with a certificate from Pebble (the local CA).
Try (in another terminal):
  curl $R https://$DOMAIN:$HTTPS_PORT/                          # web
  curl $R https://$DOMAIN:$HTTPS_PORT/console/api/apps          # api: a JSON echo of what it received
  curl $R -N "https://$DOMAIN:$HTTPS_PORT/v1/chat-messages/sse?n=10&gap_ms=500"   # SSE, event by event
  curl $R https://$DOMAIN:$HTTPS_PORT/e/hook-1                  # plugin daemon, with Dify-Hook-Url
  (cd $work/dify && $DIFYCTL -p $PROJECT --state-dir $work/state ps)   # what difyctl serves, the containers
  (cd $work/dify && $DIFYCTL -p $PROJECT --state-dir $work/state status)   # one screen: URL, certificate, traffic
  (cd $work/dify && $DIFYCTL -p $PROJECT --state-dir $work/state restart api)   # requests wait for api meanwhile
  (cd $work/dify && $DIFYCTL --state-dir $work/state certs status)
Ctrl-C stops difyctl and removes the demo stack, its volumes and Pebble.
MSG
wait "${pids[-1]}"
