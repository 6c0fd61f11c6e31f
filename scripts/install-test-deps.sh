#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine (CI runs this through `make test`).
# Idempotent: installs only what is missing. The tests need a Rust toolchain, a C compiler
# (aws-lc-sys builds with gcc) and Pebble (the ACME test CA, Debian package `pebble`, with
# pebble-challtestsrv); upstream servers are the project's own test server.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v make >/dev/null 2>&1 || need_apt+=(make)
{ command -v pebble && command -v pebble-challtestsrv; } >/dev/null 2>&1 || need_apt+=(pebble)

if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: missing ${need_apt[*]}; run as root or install them: apt-get install ${need_apt[*]}" >&2
    exit 1
  fi
  echo "install-test-deps: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-test-deps: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
