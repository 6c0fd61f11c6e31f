# Shared by the proxy benchmarks (bench/proxy.sh, bench/instructions.sh): source it.

# Installs each missing tool from Debian's packages.
need() {
  local tool pkg
  for tool in "$@"; do
    command -v "$tool" >/dev/null && continue
    pkg=$tool; [ "$tool" = h2load ] && pkg=nghttp2-client
    echo "installing $pkg..." >&2
    apt-get install -y -qq "$pkg" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$pkg" >/dev/null; }
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# An ECDSA P-256 certificate for localhost: $1/cert.pem and $1/key.pem.
self_signed() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# The upstream every proxy is measured in front of: nginx, 1 worker, answering a ~600-byte JSON
# (shaped like Dify's app list) on /. Writes $1/nginx.conf listening on port $2.
upstream_conf() {
  local dir=$1 port=$2 body
  body=$(python3 -c 'import json; print(json.dumps({"result":"success","data":[{"id":i,"name":"app-%d"%i,"mode":"chat"} for i in range(14)]})[:600])')
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
error_log $dir/error.log;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '$body'; }
  }
}
CONF
}
