# Sourced by bench/certs.sh and scripts/demo.sh (not run on its own).
#   free_port                      prints a free TCP port on 127.0.0.1
#   start_pebble DIR HTTP TLS      starts pebble-challtestsrv (every name resolves to 127.0.0.1)
#                                  and Pebble, which validates challenges on ports HTTP and TLS;
#                                  files go in DIR; appends both processes to the `pids` array;
#                                  sets ACME (its port), MGMT (management port) and
#                                  PEBBLE_CERT (Pebble's own TLS certificate, for --acme-ca-root).
# Extra environment for Pebble can be given as PEBBLE_ENV, e.g. "PEBBLE_WFE_NONCEREJECT=0".

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_pebble() {
  local dir=$1 http=$2 tls=$3 dns cts
  ACME=$(free_port); MGMT=$(free_port); dns=$(free_port); cts=$(free_port)
  PEBBLE_CERT="$dir/pebble.pem"
  # Pebble's own TLS certificate: a self-signed leaf (CA:FALSE, which rustls insists on).
  cat > "$dir/req.cnf" <<CNF
[req]
distinguished_name = dn
x509_extensions = ext
prompt = no
[dn]
CN = localhost
[ext]
basicConstraints = critical,CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
  openssl req -x509 -config "$dir/req.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout "$dir/pebble.key" -out "$PEBBLE_CERT" 2>/dev/null
  cat > "$dir/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$ACME", "managementListenAddress": "127.0.0.1:$MGMT",
 "certificate": "$PEBBLE_CERT", "privateKey": "$dir/pebble.key", "httpPort": $http, "tlsPort": $tls,
 "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
  pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dns01 "127.0.0.1:$dns" -management "127.0.0.1:$cts" \
    -http01 "" -https01 "" -tlsalpn01 "" >/dev/null 2>&1 & pids+=($!)
  env PEBBLE_VA_NOSLEEP=1 ${PEBBLE_ENV:-} pebble -config "$dir/pebble.json" -dnsserver "127.0.0.1:$dns" \
    >"$dir/pebble.log" 2>&1 & pids+=($!)
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$ACME") 2>/dev/null && break; sleep 0.1; done
}
