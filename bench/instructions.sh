#!/usr/bin/env bash
# Instructions per proxied request, difyctl vs nginx, counted by valgrind's callgrind: unlike
# requests/s on these shared 2-core machines (20-30% swing between runs), the count is the same
# run after run, so it shows what a change to the request path costs or saves.
#
#   upstream: nginx (1 worker) answering a ~600-byte JSON on / (as bench/proxy.sh)
#   nginx:    1 worker (master_process off, under callgrind), TLS, http2, keepalive 64,
#             Dify's forwarding headers, access log to a file
#   difyctl:  proxy --workers 1 under callgrind, access log to a file
# Load: h2load, 8 connections, HTTP/1.1 (--h1) and HTTP/2 (-m 4). Each proxy runs twice, with
# N and 3N requests; the difference divided by 2N is the cost of one request (start-up, TLS
# handshakes and shutdown cancel out).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-4000}
# A quicker look at one change: PROTOS=h1 WHO=difyctl (nginx's figures move only with nginx).
PROTOS=${PROTOS:-h1 h2}
WHO=${WHO:-nginx difyctl}
# shellcheck source=bench/lib.sh
. bench/lib.sh
need nginx valgrind h2load openssl curl python3
cargo build --release --quiet -p difyctl --bins

work=$(mktemp -d /tmp/difyctl-instr.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

UP=$(free_port); NGX=$(free_port); DFY=$(free_port); DFYH=$(free_port)
self_signed "$work"
upstream_conf "$work/up" "$UP"
mkdir -p "$work/ngx"
cat > "$work/ngx/nginx.conf" <<CONF
worker_processes 1;
master_process off;
error_log $work/ngx/error.log;
pid $work/ngx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log $work/ngx/access.log;
  client_body_temp_path $work/ngx/body;
  proxy_temp_path $work/ngx/proxy;
  keepalive_requests 100000;
  upstream web { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Port \$server_port;
    proxy_set_header X-Real-IP \$remote_addr;
    proxy_buffering off;
    location / { proxy_pass http://web; }
  }
}
CONF
nginx -c "$work/up/nginx.conf" -g 'daemon off;' & pids+=($!)

# Instructions of one run of proxy $1 serving $3 requests over protocol $2.
count() {
  local who=$1 proto=$2 n=$3 out="$work/cg.out" port pid
  rm -f "$out"; rm -rf "$work/state"
  if [ "$who" = nginx ]; then
    port=$NGX
    valgrind --tool=callgrind --callgrind-out-file="$out" \
      nginx -c "$work/ngx/nginx.conf" -g 'daemon off;' 2>"$work/vg.log" & pid=$!
  else
    port=$DFY
    valgrind --tool=callgrind --callgrind-out-file="$out" ./target/release/difyctl \
      --state-dir "$work/state" proxy --workers 1 --https "127.0.0.1:$DFY" --http "127.0.0.1:$DFYH" \
      --cert "$work/cert.pem" --key "$work/key.pem" --upstream-web "127.0.0.1:$UP" \
      --upstream-api "127.0.0.1:$UP" --admin off 2>"$work/difyctl.log" & pid=$!
  fi
  for _ in $(seq 120); do curl -skf "https://localhost:$port/" >/dev/null 2>&1 && break; sleep 0.5; done
  local flags="-m 4"; [ "$proto" = h1 ] && flags="--h1 -m 1"
  # shellcheck disable=SC2086
  h2load $flags -n "$n" -c 8 -t 1 "https://localhost:$port/" > "$work/h2load.out" 2>&1
  grep -q "$n succeeded" "$work/h2load.out" || { echo "$who $proto: not every request succeeded" >&2; cat "$work/h2load.out" >&2; exit 1; }
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^summary:/{print $2}' "$out"
}

echo "| instructions per request (callgrind) | nginx | difyctl | difyctl / nginx |"
echo "|---|---|---|---|"
for proto in $PROTOS; do
  declare -A per=([nginx]=0 [difyctl]=0)
  for who in $WHO; do
    a=$(count "$who" "$proto" "$N"); b=$(count "$who" "$proto" $((3 * N)))
    per[$who]=$(( (b - a) / (2 * N) ))
  done
  ratio=$(python3 -c "print(f'{${per[difyctl]} / max(${per[nginx]}, 1):.2f}')")
  label="HTTP/1.1"; [ "$proto" = h2 ] && label="HTTP/2"
  echo "| $label | ${per[nginx]} | ${per[difyctl]} | $ratio |"
done
