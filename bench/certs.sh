#!/usr/bin/env bash
# Time from nothing (no account, no certificate) to a certificate on disk, against the same
# Pebble, for difyctl (`certs renew`, standalone) and certbot (`certonly --standalone`), in one
# run. Each run starts from an empty state directory, so account registration is included for
# both. Prints the medians. Needs: pebble, certbot, openssl, python3 (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
for pkg in pebble certbot openssl python3; do
  command -v "$pkg" >/dev/null || { echo "installing $pkg..." >&2; apt-get install -y -qq "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }; }
done
cargo build --release --quiet --bin difyctl

work=$(mktemp -d /tmp/difyctl-bench-certs.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
source scripts/pebble.sh
HTTP=$(free_port); HTTPS=$(free_port)
PEBBLE_ENV="PEBBLE_WFE_NONCEREJECT=0" start_pebble "$work" "$HTTP" "$HTTPS"
DIR="https://localhost:$ACME/dir"

now_ms() { date +%s%3N; }
declare -a t_difyctl t_certbot
for i in $(seq "$RUNS"); do
  d="run$i-$RANDOM.bench.example.com"
  s=$(now_ms)
  ./target/release/difyctl --state-dir "$work/d$i" certs renew --name "$d" --email ops@example.com \
    --acme-directory "$DIR" --acme-ca-root "$PEBBLE_CERT" --http "127.0.0.1:$HTTP" --https "127.0.0.1:$HTTPS" \
    >"$work/difyctl-$i.log" 2>&1 || { cat "$work/difyctl-$i.log" >&2; exit 1; }
  t_difyctl+=($(( $(now_ms) - s )))

  d="certbot$i-$RANDOM.bench.example.com"
  s=$(now_ms)
  REQUESTS_CA_BUNDLE="$PEBBLE_CERT" certbot certonly --standalone --non-interactive --agree-tos \
    -m ops@example.com --server "$DIR" --http-01-port "$HTTP" --http-01-address 127.0.0.1 -d "$d" \
    --config-dir "$work/c$i/config" --work-dir "$work/c$i/work" --logs-dir "$work/c$i/logs" \
    >"$work/certbot-$i.log" 2>&1 || { cat "$work/certbot-$i.log" >&2; exit 1; }
  t_certbot+=($(( $(now_ms) - s )))
  echo "run $i: difyctl ${t_difyctl[-1]} ms, certbot ${t_certbot[-1]} ms" >&2
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
md=$(median "${t_difyctl[@]}"); mc=$(median "${t_certbot[@]}")
echo
echo "| from nothing to a certificate (Pebble, HTTP-01, median of $RUNS) | ms |"
echo "|---|---|"
echo "| difyctl certs renew (standalone) | $md |"
echo "| certbot certonly --standalone | $mc |"
echo "| difyctl / certbot | $(python3 -c "print('%.2f' % ($md/$mc))") |"
echo "raw: difyctl ${t_difyctl[*]} | certbot ${t_certbot[*]}" >&2
