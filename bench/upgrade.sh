#!/usr/bin/env bash
# The window during which the api does not answer while a stack goes from release v1 to v2
# (v2's api migrates the schema), difyctl `upgrade` against `docker-compose up -d` with the new
# compose file, on the same stand-in stack (PostgreSQL and Redis from Debian's packages, the
# api from the project's test server), in one run. A probe asks the api's current container
# (looked up through the Engine API at every try, so a new address is found) for /health every
# 50 ms; difyctl is also measured through its own proxy (bodiless GETs: how many failed).
# No registry is reachable here, so compose's `pull` step is left out of its side (difyctl
# pulls missing images, here none, before it stops anything).
# Needs: docker (running), docker-compose (installed when missing), python3, mmdebstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-compose >/dev/null || { apt-get install -y -qq docker-compose >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }; }
cargo build --release --quiet --bin difyctl
DIFYCTL=$PWD/target/release/difyctl
./scripts/test-db-image.sh >/dev/null
./scripts/test-image.sh >/dev/null
ctx=$(mktemp -d /tmp/difyctl-bench-ctx.XXXXXX)
cp target/static/x86_64-unknown-linux-gnu/release/testserver "$ctx/"
printf 'FROM difyctl-testdb:current\nCOPY testserver /testserver\n' >"$ctx/Dockerfile"
docker build -q -t difyctl-testapp:bench "$ctx" >/dev/null
docker tag difyctl-testapp:bench difyctl-testapp:bench-v1
docker tag difyctl-testapp:bench difyctl-testapp:bench-v2
rm -rf "$ctx"

work=$(mktemp -d /tmp/difyctl-bench-upgrade.XXXXXX)
D=bupd$$
C=bupc$$
cleanup() {
  [ -n "${serving:-}" ] && kill "$serving" 2>/dev/null || true
  (cd "$work/$D" 2>/dev/null && "$DIFYCTL" -p "$D" --state-dir "$work/state" down -v --timeout 1 >/dev/null 2>&1) || true
  (cd "$work/$C" 2>/dev/null && docker-compose -p "$C" down -v -t 1 >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# release NAME TAG REVISION: a docker/ folder of the stand-in stack (tests/it/backup.rs).
release() {
  mkdir -p "$work/$1"
  sed -n '/^    r#"services:/,/^"#$/p' tests/it/backup.rs | sed '1s/^    r#"//;$d' |
    python3 -c '
import sys
text = sys.stdin.read()
tag, rev = sys.argv[1], sys.argv[2]
text = text.replace("  api:\n    image: ${IMAGE}", f"  api:\n    image: difyctl-testapp:{tag}", 1)
text = text.replace("      STORAGE_DIR: /app/api/storage\n", f"      STORAGE_DIR: /app/api/storage\n      MIGRATE_REVISION: \"{rev}\"\n", 1)
print(text, end="")' "$2" "$3" >"$work/$1/docker-compose.yaml"
  printf 'IMAGE=difyctl-testapp:bench\nDB_PASSWORD=bench-pw\nREDIS_PASSWORD=bench-redis\n' >"$work/$1/.env.example"
}
release v1 bench-v1 1
release v2 bench-v2 2
for p in "$D" "$C"; do
  mkdir -p "$work/$p"
  cp "$work/v1/docker-compose.yaml" "$work/$p/"
  cp "$work/v1/.env.example" "$work/$p/.env"
done

# probe PROJECT NAME_PATTERN: longest gap (ms) between two answers of the api's container.
probe() { exec python3 - "$@" <<'PY'
import http.client, json, signal, socket, sys, time
project, pattern = sys.argv[1], sys.argv[2]
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect("/var/run/docker.sock")
worst, last_ok = 0.0, time.monotonic()
def done(*_):
    print(f"{worst * 1000:.0f}"); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    try:
        c = Unix("localhost", timeout=2)
        c.request("GET", "/containers/" + pattern.replace("{p}", project) + "/json")
        info = json.loads(c.getresponse().read())
        ip = next(n["IPAddress"] for n in info["NetworkSettings"]["Networks"].values() if n["IPAddress"])
        s = socket.create_connection((ip, 5001), timeout=2)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        if s.recv(12).startswith(b"HTTP/1.1 200"):
            now = time.monotonic(); worst = max(worst, now - last_ok); last_ok = now
        s.close()
    except Exception:
        pass
    time.sleep(0.05)
PY
}
# through PORT: bodiless GETs through difyctl's proxy until killed; prints "ok failed".
through() { exec python3 - "$1" <<'PY'
import signal, socket, ssl, sys, time
port = int(sys.argv[1]); ok = failed = 0
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def done(*_):
    print(ok, failed); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    try:
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60), server_hostname="localhost")
        s.settimeout(60)
        s.sendall(b"GET /console/api/notes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        head = s.recv(12)
        ok, failed = (ok + 1, failed) if head.startswith(b"HTTP/1.1 200") else (ok, failed + 1)
        s.close()
    except Exception:
        failed += 1
    time.sleep(0.05)
PY
}

echo "starting both stacks at v1..." >&2
(cd "$work/$D" && "$DIFYCTL" -p "$D" --state-dir "$work/state" up --no-proxy --wait-timeout 120 >/dev/null 2>&1)
(cd "$work/$C" && docker-compose -p "$C" up -d >/dev/null 2>&1)
for p in "$D" "$C"; do
  for _ in $(seq 1 60); do
    docker exec "$( [ "$p" = "$D" ] && echo "$p-db_postgres-1" || echo "${p}_db_postgres_1")" pg_isready -q -h 127.0.0.1 && break
    sleep 1
  done
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work/$D" && exec "$DIFYCTL" -p "$D" --state-dir "$work/state" up --http "127.0.0.1:$hport" --https "127.0.0.1:$port" >"$work/serve.log" 2>&1) &
serving=$!
for _ in $(seq 1 100); do grep -q "proxy listening" "$work/serve.log" && break; sleep 0.2; done
sleep 2

probe "$D" "{p}-api-1" >"$work/d.gap" & pd=$!
through "$port" >"$work/d.through" & td=$!
sleep 1
t0=$(date +%s.%N)
(cd "$work/$D" && "$DIFYCTL" -p "$D" --state-dir "$work/state" upgrade --from "$work/v2" --yes --wait-timeout 120 >"$work/upgrade.log" 2>&1) || { cat "$work/upgrade.log" >&2; exit 1; }
t1=$(date +%s.%N)
sleep 2
kill -TERM "$pd" "$td"; wait "$pd" "$td" 2>/dev/null || true

probe "$C" "{p}_api_1" >"$work/c.gap" & pc=$!
sleep 1
cp "$work/v2/docker-compose.yaml" "$work/$C/docker-compose.yaml"
t2=$(date +%s.%N)
(cd "$work/$C" && docker-compose -p "$C" up -d >/dev/null 2>&1)
t3=$(date +%s.%N)
sleep 5
kill -TERM "$pc"; wait "$pc" 2>/dev/null || true

read -r ok failed <"$work/d.through"
cat <<EOF
| | difyctl upgrade | docker-compose up -d (new compose file) |
|---|---|---|
| longest time the api did not answer, ms (probe every 50 ms) | $(cat "$work/d.gap") | $(cat "$work/c.gap") |
| command wall time, s | $(python3 -c "print(f'{$t1-$t0:.1f}')") (backup, plan, recreate, migration watched, all healthy) | $(python3 -c "print(f'{$t3-$t2:.1f}')") (returns before the api is up) |
| bodiless GETs through difyctl's proxy during the upgrade | $ok answered, $failed failed | (no proxy following the new address) |
EOF
