#!/usr/bin/env bash
# Wall time of bringing a ten-service stack up (until every healthcheck passes) and down,
# difyctl vs docker-compose (the Debian package), on the same compose file and image, in one
# run. Every run starts from nothing (`down -v` before). Prints the medians.
# Needs: docker (running), docker-compose (installed when missing), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
command -v docker-compose >/dev/null || { echo "installing docker-compose..." >&2; apt-get install -y -qq docker-compose >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null; }; }
cargo build --release --quiet --bin difyctl
./scripts/test-image.sh >/dev/null
DIFYCTL=$PWD/target/release/difyctl

work=$(mktemp -d /tmp/difyctl-bench-up.XXXXXX)
P=benchup$$
cleanup() { (cd "$work" && "$DIFYCTL" -p "$P" down -v --timeout 1 >/dev/null 2>&1) || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

hc() { echo "{test: [\"CMD\", \"/testserver\", \"probe\", \"http://127.0.0.1:$1/health\"], interval: 1s, timeout: 2s, retries: 60}"; }
cat > "$work/docker-compose.yaml" <<YAML
services:
  db:
    image: difyctl-testserver:test
    command: ["db=0.0.0.0:5432"]
    volumes: ["db:/data"]
    healthcheck: $(hc 5432)
  redis:
    image: difyctl-testserver:test
    command: ["redis=0.0.0.0:6379"]
    healthcheck: $(hc 6379)
  weaviate:
    image: difyctl-testserver:test
    command: ["weaviate=0.0.0.0:8080"]
    volumes: ["./volumes/weaviate:/data"]
  sandbox:
    image: difyctl-testserver:test
    command: ["sandbox=0.0.0.0:8194"]
    healthcheck: $(hc 8194)
    networks: [ssrf, default]
  ssrf_proxy:
    image: difyctl-testserver:test
    command: ["ssrf_proxy=0.0.0.0:3128"]
    networks: [ssrf, default]
  api:
    image: difyctl-testserver:test
    command: ["api=0.0.0.0:5001"]
    healthcheck: $(hc 5001)
    depends_on:
      db: {condition: service_healthy}
      redis: {condition: service_healthy}
  worker:
    image: difyctl-testserver:test
    command: ["worker=0.0.0.0:5001"]
    depends_on:
      db: {condition: service_healthy}
      redis: {condition: service_healthy}
  worker_beat:
    image: difyctl-testserver:test
    command: ["beat=0.0.0.0:5001"]
    depends_on:
      db: {condition: service_healthy}
      redis: {condition: service_healthy}
  plugin_daemon:
    image: difyctl-testserver:test
    command: ["plugin=0.0.0.0:5002"]
    healthcheck: $(hc 5002)
    depends_on:
      db: {condition: service_healthy}
  web:
    image: difyctl-testserver:test
    command: ["web=0.0.0.0:3000"]
    healthcheck: $(hc 3000)
    depends_on: [api]
networks:
  ssrf:
    internal: true
volumes:
  db:
YAML
cd "$work"

now() { date +%s.%N; }
# docker-compose 1.29 has no --wait: poll until every container with a healthcheck is healthy.
wait_healthy() {
  while true; do
    ids=$(docker ps -q --filter "label=com.docker.compose.project=$P")
    [ "$(echo "$ids" | grep -c .)" -ge 10 ] || { sleep 0.1; continue; }
    states=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids)
    echo "$states" | grep -qv -e healthy -e none || break
    echo "$states" | grep -q -e starting -e unhealthy || break
    sleep 0.1
  done
}
calc() { awk "BEGIN { print $1 }"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -a cu cd du dd
for i in $(seq 1 "$RUNS"); do
  docker-compose -p "$P" down -v -t 1 >/dev/null 2>&1 || true
  t0=$(now); docker-compose -p "$P" up -d >/dev/null 2>&1; wait_healthy; t1=$(now)
  docker-compose -p "$P" down -t 10 >/dev/null 2>&1; t2=$(now)
  cu+=("$(calc "$t1 - $t0")"); cd+=("$(calc "$t2 - $t1")")
  docker-compose -p "$P" down -v -t 1 >/dev/null 2>&1 || true

  t0=$(now); "$DIFYCTL" -p "$P" up --no-proxy >/dev/null 2>&1; t1=$(now)
  "$DIFYCTL" -p "$P" down --timeout 10 >/dev/null 2>&1; t2=$(now)
  du+=("$(calc "$t1 - $t0")"); dd+=("$(calc "$t2 - $t1")")
  "$DIFYCTL" -p "$P" down -v --timeout 1 >/dev/null 2>&1
  echo "run $i: compose up ${cu[-1]}s down ${cd[-1]}s | difyctl up ${du[-1]}s down ${dd[-1]}s" >&2
done
mcu=$(printf '%s\n' "${cu[@]}" | median); mcd=$(printf '%s\n' "${cd[@]}" | median)
mdu=$(printf '%s\n' "${du[@]}" | median); mdd=$(printf '%s\n' "${dd[@]}" | median)
printf '\n%-28s %10s %10s %8s\n' "10 services (median of $RUNS)" "compose" "difyctl" "ratio"
printf '%-28s %9.2fs %9.2fs %7.2fx\n' "up, to all healthy" "$mcu" "$mdu" "$(calc "$mdu / $mcu")"
printf '%-28s %9.2fs %9.2fs %7.2fx\n' "down" "$mcd" "$mdd" "$(calc "$mdd / $mcd")"
