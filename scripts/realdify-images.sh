#!/usr/bin/env bash
# Starts, in the background, the build of the real-Dify images the tests run
# (../shared/realdify: Dify's api built from its source for 1.15.0, 1.16.0 and 1.16.1,
# PostgreSQL/Redis/squid/busybox from Debian's packages, and the project's test server under
# the names of the services that cannot be built here), so that it overlaps the compile of the
# test suite. The tests (tests/it/realdify.rs) run the kit's build.sh themselves before they
# start: it waits for this build (the kit holds a lock) and then takes a second, because each
# image is labelled with a hash of what it is made of and kept while that matches: a machine
# builds them once (about 20 minutes), later runs reuse them. Log: target/realdify-images.log.
# Without the kit there is nothing to do and the real-Dify tests say they are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
kit=../shared/realdify
if [ ! -x "$kit/build.sh" ]; then
  echo "realdify-images: no kit at $kit: the real-Dify tests will be skipped"
  exit 0
fi
mkdir -p target
# The stand-ins are this image under Dify's names.
./scripts/test-image.sh
nohup bash -c "for v in 1.15.0 1.16.0 1.16.1; do STANDIN_IMAGE=difyctl-testserver:test '$kit/build.sh' all \$v || exit 1; done" \
  >target/realdify-images.log 2>&1 </dev/null &
echo "realdify-images: building Dify's images in the background (pid $!, log: target/realdify-images.log)"
