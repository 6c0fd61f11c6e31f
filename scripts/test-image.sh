#!/usr/bin/env bash
# Builds the stand-in image `difyctl-testserver:test` with no registry: a static build of the
# project's test server (testserver/) as the only file of a FROM-scratch image, imported into
# the local Docker engine. Used by the demo and the benchmarks (the tests do the same through
# the Engine API, tests/it/images.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --quiet -p difyctl-testserver --target x86_64-unknown-linux-gnu --target-dir target/static
bin=target/static/x86_64-unknown-linux-gnu/release/testserver
# Built from the same bytes already: nothing to do (a rebuild would leave the old image
# behind, untagged).
hash=$(sha256sum "$bin" | cut -c1-16)
old=$(docker image inspect -f '{{.Id}} {{index .Config.Labels "difyctl.content"}}' difyctl-testserver:test 2>/dev/null || true)
if [ "${old#* }" = "$hash" ]; then
  echo "difyctl-testserver:test is up to date"
  exit 0
fi
root=$(mktemp -d /tmp/difyctl-image.XXXXXX)
trap 'rm -rf "$root"' EXIT
cp "$bin" "$root/testserver"
mkdir -m 1777 "$root/tmp" "$root/data"
tar -C "$root" -cf - . | docker import -c 'ENTRYPOINT ["/testserver"]' -c "LABEL difyctl.content=$hash" - difyctl-testserver:test >/dev/null
if [ -n "$old" ]; then docker image rm "${old%% *}" >/dev/null 2>&1 || true; fi
echo "built difyctl-testserver:test"
