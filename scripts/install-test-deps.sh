#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (CI runs this through `make test`).
# Idempotent: installs only what is missing. The tests need a Rust toolchain, a C compiler
# (aws-lc-sys builds with gcc) and Pebble (the ACME test CA, Debian package `pebble`, with
# pebble-challtestsrv), docker-compose (the Debian package: the adoption test starts a stack
# with it), glibc's static libraries (the test image is a static build of the project's test
# server), mmdebstrap (the test database image is built from Debian's postgresql and
# redis-server packages, scripts/test-db-image.sh) and a running Docker engine (started here
# when it is installed but not running).
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v make >/dev/null 2>&1 || need_apt+=(make)
{ command -v pebble && command -v pebble-challtestsrv; } >/dev/null 2>&1 || need_apt+=(pebble)
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need_apt+=(libc6-dev)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)

if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing ${need_apt[*]}; run as root or install them: apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "install-test-deps: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# `export kubernetes` output is validated offline against Kubernetes' published schemas
# (the package carries them), pinned here.
KV_VERSION=1.37.0
if ! python3 -c "import importlib.metadata as m; assert m.version('kubernetes-validate') == '$KV_VERSION'" 2>/dev/null; then
  echo "install-test-deps: installing kubernetes-validate $KV_VERSION (PyPI)"
  if ! python3 -m pip --version >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
  fi
  # Debian's own Python refuses pip outside a venv unless told (PEP 668).
  python3 -m pip install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION" 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages "kubernetes-validate==$KV_VERSION" >/dev/null
  python3 -c "import kubernetes_validate" || { echo "install-test-deps: cannot install kubernetes-validate (pip)" >&2; exit 1; }
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-test-deps: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# The engine tests need a Docker engine. Start one when it is installed but not running.
# (Without the docker CLI, a socket that accepts a connection counts: the tests use the API.)
docker_up() {
  if command -v docker >/dev/null 2>&1; then
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    local sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
    python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "${sock#unix://}" 2>/dev/null
  fi
}
if ! docker_up; then
  if command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "install-test-deps: starting dockerd (log: /tmp/dockerd.log)"
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do docker_up && break; sleep 1; done
  fi
  if ! docker_up; then
    echo "install-test-deps: no Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}:" >&2
    echo "  install Docker (docker.io or docker-ce) and start it, or set DOCKER_HOST; the engine tests need it" >&2
    exit 1
  fi
fi

# The compose conformance runner (scripts/conformance.sh) reads its cases with PyYAML.
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "install-test-deps: installing PyYAML"
  python3 -m pip install -q pyyaml 2>/dev/null || {
    [ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null
  }
fi

# Real PostgreSQL and Redis for the backup tests, from Debian's packages (built once per machine).
"$(dirname "$0")/test-db-image.sh"

# The real Dify (Dify's api built from source, ../shared/realdify), in the background while
# the tests compile; the real-Dify tests wait for it.
"$(dirname "$0")/realdify-images.sh"
