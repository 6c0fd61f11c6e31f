#!/usr/bin/env bash
# difyctl proxy vs nginx and Caddy, same upstream, same certificate, same machine, one run.
#
#   upstream: nginx (1 worker) answering a ~600-byte JSON on / ; the project's test server for
#             SSE (/v1/sse) and uploads (/v1/upload)
#   nginx:    2 workers, TLS, http2, keepalive 64 to the upstream, proxy_buffering off, the
#             forwarding headers Dify's nginx sets, access log to a file (nginx tuned: the target)
#   nginx as Dify ships it: its docker/nginx templates (1.16.0) filled with its .env defaults:
#             workers auto, no http2, a new upstream connection per request (proxy_pass to
#             host:port, no keepalive pool), keepalive_requests 1000, the "main" log format;
#             what an operator who replaces Dify's nginx with difyctl runs today (HTTP/1.1 only)
#   caddy:    GOMAXPROCS 2 (both cores), same certificate, reverse_proxy (flush_interval -1 on
#             /v1 for streams), access log to a file
#   difyctl:  2 workers, same certificate, access log to a file (buffered like nginx's
#             buffer=64k flush=1s would be; nginx here writes each line), admin listener on
# Load: wrk (HTTP/1.1 over TLS, -t2 -c64) and h2load (HTTP/2, -c32 -m10 -t2), rounds alternating.
# Prints a Markdown table; copy it into BENCHMARKS.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}

# shellcheck source=bench/lib.sh
. bench/lib.sh
need nginx caddy wrk h2load openssl curl python3
cargo build --release --quiet -p difyctl -p difyctl-testserver --bins

work=$(mktemp -d /tmp/difyctl-bench.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

UP=$(free_port); TS=$(free_port); NGX=$(free_port); DFY=$(free_port); DFYH=$(free_port)
STOCK=$(free_port)
CDY=$(free_port); CDYH=$(free_port)

self_signed "$work"

upstream_conf "$work/up" "$UP"
mkdir -p "$work/ngx" "$work/caddy" "$work/stock"
cat > "$work/ngx/nginx.conf" <<CONF
worker_processes 2;
error_log $work/ngx/error.log;
pid $work/ngx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log $work/ngx/access.log;
  client_body_temp_path $work/ngx/body;
  proxy_temp_path $work/ngx/proxy;
  keepalive_requests 100000;
  upstream web { server 127.0.0.1:$UP; keepalive 64; }
  upstream api { server 127.0.0.1:$TS; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    client_max_body_size 2g;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Port \$server_port;
    proxy_set_header X-Real-IP \$remote_addr;
    proxy_buffering off;
    proxy_read_timeout 3600s;
    location /v1 { proxy_pass http://api; }
    location / { proxy_pass http://web; }
  }
}
CONF
# Dify 1.16.0's nginx.conf.template + proxy.conf.template + https.conf.template + the "/" and
# "/v1" locations of conf.d/default.conf.template, with envs/infrastructure/nginx.env.example's
# values (paths and ports aside).
cat > "$work/stock/nginx.conf" <<CONF
worker_processes auto;
error_log $work/stock/error.log notice;
pid $work/stock/nginx.pid;
events { worker_connections 1024; }
http {
  default_type application/octet-stream;
  log_format main '\$remote_addr - \$remote_user [\$time_local] "\$request" '
                  '\$status \$body_bytes_sent "\$http_referer" '
                  '"\$http_user_agent" "\$http_x_forwarded_for"';
  access_log $work/stock/access.log main;
  client_body_temp_path $work/stock/body;
  proxy_temp_path $work/stock/proxy;
  sendfile on;
  keepalive_timeout 65;
  client_max_body_size 100M;
  server {
    listen 127.0.0.1:$STOCK ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Forwarded-Port \$server_port;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    location /v1 { proxy_pass http://127.0.0.1:$TS; }
    location / { proxy_pass http://127.0.0.1:$UP; }
  }
}
CONF
cat > "$work/caddy/Caddyfile" <<CONF
{
  admin off
  auto_https off
  default_sni localhost
  http_port $CDYH
  storage file_system $work/caddy/data
}
https://localhost:$CDY {
  tls $work/cert.pem $work/key.pem
  log {
    output file $work/caddy/access.log
  }
  request_body {
    max_size 2GB
  }
  reverse_proxy /v1* 127.0.0.1:$TS {
    flush_interval -1
  }
  reverse_proxy 127.0.0.1:$UP
}
CONF
nginx -c "$work/up/nginx.conf" -g 'daemon off;' & pids+=($!)
HOME=$work/caddy XDG_DATA_HOME=$work/caddy XDG_CONFIG_HOME=$work/caddy GOMAXPROCS=2 \
  caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile 2>"$work/caddy/caddy.log" &
CDY_PID=$!; pids+=($CDY_PID)
nginx -c "$work/ngx/nginx.conf" -g 'daemon off;' & pids+=($!)
nginx -c "$work/stock/nginx.conf" -g 'daemon off;' & pids+=($!)
./target/release/testserver "api=127.0.0.1:$TS" 2>/dev/null & pids+=($!)
./target/release/difyctl --state-dir "$work/state" proxy --workers 2 \
  --https "127.0.0.1:$DFY" --http "127.0.0.1:$DFYH" --cert "$work/cert.pem" --key "$work/key.pem" \
  --upstream-web "127.0.0.1:$UP" --upstream-api "127.0.0.1:$TS" --max-body 2G --admin 127.0.0.1:0 2>"$work/difyctl.log" &
DFY_PID=$!; pids+=($DFY_PID)
sleep 1
curl -skf "https://localhost:$NGX/" >/dev/null && curl -skf "https://localhost:$DFY/" >/dev/null \
  && curl -skf "https://localhost:$CDY/" >/dev/null && curl -skf "https://localhost:$STOCK/" >/dev/null \
  || { echo "a proxy did not start" >&2; cat "$work/ngx/error.log" "$work/stock/error.log" "$work/difyctl.log" "$work/caddy/caddy.log" >&2; exit 1; }

ngx_pids() { pgrep -f "nginx.*$work/ngx/nginx.conf" ; pgrep -P "$(cat "$work/ngx/nginx.pid")"; }
stock_pids() { pgrep -f "nginx.*$work/stock/nginx.conf" ; pgrep -P "$(cat "$work/stock/nginx.pid")"; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $t; }
# Max RSS (kB) of the processes of $1 (a function name) while the command after it runs.
peak_rss() {
  local fn=$1; shift; local peak=0 f="$work/peak"; echo 0 > "$f"
  ( while :; do r=$(rss_kb $($fn)); [ "$r" -gt "$(cat "$f")" ] && echo "$r" > "$f"; sleep 0.2; done ) & local s=$!
  "$@" > "$work/out" 2>&1 || true; kill $s; wait $s 2>/dev/null || true; cat "$f"
}
dfy_pids() { echo "$DFY_PID"; }
cdy_pids() { echo "$CDY_PID"; }

idle_ngx=$(rss_kb $(ngx_pids | sort -u)); idle_dfy=$(rss_kb "$DFY_PID"); idle_cdy=$(rss_kb "$CDY_PID")

# CPU time (user + system, clock ticks) the processes listed by $1 (a function name) used.
cpu_ticks() { local t=0 p; for p in $($1); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
# Microseconds of the proxy's CPU per request: ticks before, ticks after, requests.
per_request() { python3 -c "print('%.1f' % (($2 - $1) * 1e6 / $(getconf CLK_TCK) / max($3, 1)))"; }

# Requests/s alone depends on what wrk and the upstream take of the same 2 cores; the proxy's
# own CPU per request is the figure that says how much work it does (lower is better).
declare -A rps p99 rss cpu bad
run_wrk() { # name port pids-function
  local before; before=$(cpu_ticks "$3")
  local peak; peak=$(peak_rss "$3" wrk -t2 -c64 -d"${DURATION}s" --latency "https://localhost:$2/")
  local r l n
  r=$(awk '/Requests\/sec/{print $2}' "$work/out"); l=$(awk '$1=="99%"{print $2}' "$work/out")
  n=$(awk '/requests in/{print $1}' "$work/out")
  # Answers other than 2xx/3xx and socket errors: a proxy failing fast must not look fast.
  local e; e=$(awk '/Non-2xx/{s+=$NF} /Socket errors/{gsub(",",""); s+=$4+$6+$8+$10} END{print s+0}' "$work/out")
  rps[$1-h1]+="$r "; p99[$1-h1]+="$l "; rss[$1]+="$peak "; bad[$1]=$(( ${bad[$1]:-0} + e ))
  cpu[$1-h1]+="$(per_request "$before" "$(cpu_ticks "$3")" "${n:-0}") "
}
run_h2load() { # name port pids-function
  rm -f "$work/h2.log"
  local before; before=$(cpu_ticks "$3")
  h2load -c32 -m10 -t2 -D "$DURATION" --log-file="$work/h2.log" "https://localhost:$2/" > "$work/out" 2>&1 || true
  local r l n
  r=$(awk '/^finished in/{print $4}' "$work/out")
  l=$(awk '{print $3}' "$work/h2.log" | sort -n | awk '{a[NR]=$1} END{i=int(NR*0.99); if(i<1)i=1; printf "%.2fms", a[i]/1000}')
  n=$(awk '/^requests:/{print $8}' "$work/out")
  rps[$1-h2]+="$r "; p99[$1-h2]+="$l "
  cpu[$1-h2]+="$(per_request "$before" "$(cpu_ticks "$3")" "${n:-0}") "
}
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS..." >&2
  run_wrk nginx "$NGX" ngx_pids; run_wrk difyctl "$DFY" dfy_pids; run_wrk caddy "$CDY" cdy_pids
  run_wrk stock "$STOCK" stock_pids
  run_h2load nginx "$NGX" ngx_pids; run_h2load difyctl "$DFY" dfy_pids; run_h2load caddy "$CDY" cdy_pids
done

sse() { python3 bench/sse_latency.py "$1" 100; }
read -r sse_direct_med sse_direct_p99 < <(sse "http://127.0.0.1:$TS/v1/sse?n=100&gap_ms=20")
read -r sse_ngx_med sse_ngx_p99 < <(sse "https://127.0.0.1:$NGX/v1/sse?n=100&gap_ms=20")
read -r sse_dfy_med sse_dfy_p99 < <(sse "https://127.0.0.1:$DFY/v1/sse?n=100&gap_ms=20")
read -r sse_cdy_med sse_cdy_p99 < <(sse "https://127.0.0.1:$CDY/v1/sse?n=100&gap_ms=20")

upload() { head -c 1G /dev/zero | curl -sk -X POST -T - -o "$work/upload.json" "https://localhost:$DFY/v1/upload"; }
upload_start=$(rss_kb "$DFY_PID")
upload_peak=$(peak_rss dfy_pids upload)
upload_ok=$(python3 -c "import json; print(json.load(open('$work/upload.json'))['bytes'] == 1<<30)" 2>/dev/null || echo False)

mean() { # mean of values like 1234.5, 850.00us, 12.3ms, 1.05s (times in ms)
  python3 - "$@" <<'PY'
import sys
def num(x):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if x.endswith(unit):
            return float(x[: -len(unit)]) * f
    return float(x)
v = [num(x) for x in sys.argv[1:] if x]
print("%.1f" % (sum(v) / len(v)) if v else "n/a")
PY
}
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
# Lowest and highest of the rounds: on a shared machine the spread says how far to trust a mean.
range() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.0f-%.0f", lo, hi}'; }

echo
peak() { echo $(( $(echo $1 | tr ' ' '\n' | sort -n | tail -1) / 1024 )); }
echo "| metric | nginx | Caddy | difyctl | difyctl / nginx | difyctl / Caddy |"
echo "|---|---|---|---|---|---|"
for proto in h1 h2; do
  a=$(mean ${rps[nginx-$proto]}); c=$(mean ${rps[caddy-$proto]}); b=$(mean ${rps[difyctl-$proto]})
  echo "| requests/s, $proto (mean of $ROUNDS) | $a | $c | $b | $(ratio "$b" "$a") | $(ratio "$b" "$c") |"
  echo "| requests/s, $proto, lowest-highest round | $(range ${rps[nginx-$proto]}) | $(range ${rps[caddy-$proto]}) | $(range ${rps[difyctl-$proto]}) | | |"
  a=$(mean ${p99[nginx-$proto]}); c=$(mean ${p99[caddy-$proto]}); b=$(mean ${p99[difyctl-$proto]})
  echo "| p99 ms, $proto | $a | $c | $b | $(ratio "$b" "$a") | $(ratio "$b" "$c") |"
  a=$(mean ${cpu[nginx-$proto]}); c=$(mean ${cpu[caddy-$proto]}); b=$(mean ${cpu[difyctl-$proto]})
  echo "| proxy CPU µs per request (user + system), $proto | $a | $c | $b | $(ratio "$b" "$a") | $(ratio "$b" "$c") |"
done
echo "| SSE relay latency, median / p99 µs (direct: $sse_direct_med / $sse_direct_p99) | $sse_ngx_med / $sse_ngx_p99 | $sse_cdy_med / $sse_cdy_p99 | $sse_dfy_med / $sse_dfy_p99 | added by difyctl: $((sse_dfy_med - sse_direct_med)) µs median | |"
echo "| RSS idle, MB | $((idle_ngx / 1024)) (all processes) | $((idle_cdy / 1024)) | $((idle_dfy / 1024)) | | |"
echo "| RSS under wrk load, peak MB | $(peak "${rss[nginx]}") | $(peak "${rss[caddy]}") | $(peak "${rss[difyctl]}") | | |"
echo "| RSS during a 1 GB upload (start -> peak), MB | | | $((upload_start / 1024)) -> $((upload_peak / 1024)) (arrived intact: $upload_ok) | | |"
echo "| access log lines written (nginx / Caddy / difyctl) | $(wc -l < "$work/ngx/access.log") | $(wc -l < "$work/caddy/access.log") | $(grep -c ' access: ' "$work/difyctl.log") | | |"
echo "| wrk: non-2xx/3xx answers and socket errors, h1 | ${bad[nginx]} | ${bad[caddy]} | ${bad[difyctl]} | | |"
echo
# The nginx an operator replaces: Dify's own configuration (HTTP/1.1 only, it has no http2).
echo "| HTTP/1.1 | nginx as Dify ships it | difyctl | difyctl / Dify's nginx |"
echo "|---|---|---|---|"
a=$(mean ${rps[stock-h1]}); b=$(mean ${rps[difyctl-h1]})
echo "| requests/s (mean of $ROUNDS) | $a | $b | $(ratio "$b" "$a") |"
echo "| requests/s, lowest-highest round | $(range ${rps[stock-h1]}) | $(range ${rps[difyctl-h1]}) | |"
a=$(mean ${p99[stock-h1]}); b=$(mean ${p99[difyctl-h1]})
echo "| p99 ms | $a | $b | $(ratio "$b" "$a") |"
a=$(mean ${cpu[stock-h1]}); b=$(mean ${cpu[difyctl-h1]})
echo "| proxy CPU µs per request | $a | $b | $(ratio "$b" "$a") |"
echo "| non-2xx/3xx answers and socket errors | ${bad[stock]} | ${bad[difyctl]} | |"
echo
for k in $(printf '%s\n' "${!rps[@]}" | sort); do
  echo "raw $k: rps ${rps[$k]}| p99 ${p99[$k]}| cpu µs ${cpu[$k]}" >&2
done
