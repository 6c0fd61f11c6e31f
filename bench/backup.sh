#!/usr/bin/env bash
# Backup and restore of a Dify-shaped stack holding a ~1 GB PostgreSQL database and ~2 GB of
# files in the api's storage: `difyctl backup` / `difyctl restore` against doing it by hand
# the way Dify's docs say (`pg_dump` inside the db container + `tar` of the volumes; restore
# with `pg_restore` + untar), in one run. Also: difyctl's peak RSS, and how long the api did
# not answer while the backup ran (a probe every 50 ms straight to the container).
# Needs: docker (running), python3, mmdebstrap (for the database image, built when missing).
# Sizes: DB_MB (default 1024), FILES_MB (default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
DB_MB=${DB_MB:-1024}
FILES_MB=${FILES_MB:-2048}
cargo build --release --quiet --bin difyctl
DIFYCTL=$PWD/target/release/difyctl
./scripts/test-db-image.sh >/dev/null
./scripts/test-image.sh >/dev/null
ctx=$(mktemp -d /tmp/difyctl-bench-ctx.XXXXXX)
cp target/static/x86_64-unknown-linux-gnu/release/testserver "$ctx/"
printf 'FROM difyctl-testdb:current\nCOPY testserver /testserver\n' >"$ctx/Dockerfile"
docker build -q -t difyctl-testapp:bench "$ctx" >/dev/null
rm -rf "$ctx"

work=$(mktemp -d /tmp/difyctl-bench-backup.XXXXXX)
P=benchbk$$
mkdir -p "$work/$P" "$work/${P}r" "$work/out"
cleanup() {
  for p in "$P" "${P}r"; do (cd "$work" && "$DIFYCTL" -p "$p" down -v --timeout 1 >/dev/null 2>&1) || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
# The stand-in stack of tests/it/backup.rs.
sed -n '/^    r#"services:/,/^"#$/p' tests/it/backup.rs | sed '1s/^    r#"//;$d' >"$work/$P/docker-compose.yaml"
printf 'IMAGE=difyctl-testapp:bench\nDB_PASSWORD=bench-pw\nREDIS_PASSWORD=bench-redis\n' >"$work/$P/.env"
cd "$work/$P"
"$DIFYCTL" -p "$P" up --no-proxy --wait-timeout 120 >/dev/null 2>&1

echo "filling: ${DB_MB} MB of rows, ${FILES_MB} MB of files..." >&2
rows=$((DB_MB * 1024))
docker exec "$P-db_postgres-1" psql -q -U postgres -d dify -c \
  "CREATE TABLE big AS SELECT g AS id, md5(g::text) || repeat(md5((g * 7)::text), 30) AS pad FROM generate_series(1, $rows) g" >/dev/null
docker exec "$P-api-1" sh -c "for i in \$(seq 1 $((FILES_MB / 256))); do head -c 268435456 /dev/urandom > /app/api/storage/file\$i.bin; done"
db_size=$(docker exec "$P-db_postgres-1" psql -U postgres -d dify -Atc "SELECT pg_database_size('dify') / 1048576")
api_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$P-api-1")
sync

# Wall seconds of a command, and (for difyctl) its peak RSS in MB.
timed() { python3 - "$@" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
dt = time.monotonic() - t
if rc != 0:
    sys.exit(f"failed ({rc}): {' '.join(sys.argv[1:])}")
print(f"{dt:.1f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}")
PY
}
# Probes the api every 50 ms until killed; prints the longest time it went unanswered (ms).
probe() { exec python3 - "$1" <<'PY'
import signal, socket, sys, time
addr = (sys.argv[1], 5001)
worst, last_ok = 0.0, time.monotonic()
def done(*_):
    print(f"{worst * 1000:.0f}"); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    try:
        s = socket.create_connection(addr, timeout=30)
        s.settimeout(30)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
        if s.recv(12).startswith(b"HTTP/1.1 200"):
            now = time.monotonic(); worst = max(worst, now - last_ok); last_ok = now
        s.close()
    except OSError:
        pass
    time.sleep(0.05)
PY
}

probe "$api_ip" >"$work/probe.out" & probe_pid=$!
sleep 1
read -r d_backup d_rss < <(timed "$DIFYCTL" -p "$P" --state-dir "$work/state" backup --to "$work/out")
sleep 1
kill -TERM "$probe_pid"; wait "$probe_pid" || true
gap=$(cat "$work/probe.out")
archive=$(ls "$work/out"/difyctl-*.tar)
a_size=$(( $(stat -c %s "$archive") / 1048576 ))

by_hand_backup() {
  docker exec "$P-db_postgres-1" pg_dump -U postgres -Fc -d dify >"$work/hand.dump" &&
    tar -C "$work/$P" -cf "$work/hand.tar" volumes/app/storage volumes/redis/data
}
export -f by_hand_backup; export P work
read -r h_backup _ < <(timed bash -c by_hand_backup)
h_size=$(( ($(stat -c %s "$work/hand.dump") + $(stat -c %s "$work/hand.tar")) / 1048576 ))

read -r d_restore d_rss_r < <(timed "$DIFYCTL" --state-dir "$work/state-r" restore "$archive" --dir "$work/${P}r" --wait-timeout 300)
rows_back=$(docker exec "${P}r-db_postgres-1" psql -U postgres -d dify -Atc "SELECT count(*) FROM big")
# By hand, into the restored stack's fresh database and a new folder (the server already runs).
by_hand_restore() {
  docker exec "${P}r-db_postgres-1" psql -q -U postgres -d postgres -c "CREATE DATABASE handcopy" &&
    docker exec -i "${P}r-db_postgres-1" pg_restore -U postgres -d handcopy <"$work/hand.dump" &&
    mkdir -p "$work/handdir" && tar -C "$work/handdir" -xf "$work/hand.tar"
}
export -f by_hand_restore
read -r h_restore _ < <(timed bash -c by_hand_restore)

cat <<EOF
database ${db_size} MB (rows back after restore: ${rows_back} of ${rows}), files ${FILES_MB} MB

| | difyctl | by hand (pg_dump + tar) | difyctl / by hand |
|---|---|---|---|
| backup, s | ${d_backup} | ${h_backup} | $(python3 -c "print(f'{${d_backup}/${h_backup}:.2f}')") |
| restore, s | ${d_restore} (verify, files, volumes, start db, load, start the stack) | ${h_restore} (into a running server) | $(python3 -c "print(f'{${d_restore}/${h_restore}:.2f}')") |
| archive size, MB | ${a_size} (one file, verified) | ${h_size} (two files) | |
| peak RSS, MB | backup ${d_rss}, restore ${d_rss_r} | | |
| longest api silence during the backup, ms | ${gap} (probe every 50 ms) | | |
EOF
