# Build, test, lint and benchmark difyctl. `make test` is what CI runs (through .ci/run).
CARGO ?= cargo

.PHONY: build release test lint fmt bench bench-proxy bench-instructions bench-certs bench-up bench-backup bench-upgrade demo demo-proxy

build:
	$(CARGO) build

release:
	$(CARGO) build --release -p difyctl -p difyctl-testserver --bins

# Installs what the tests need (idempotent), then runs every test.
test:
	./scripts/install-test-deps.sh
	$(CARGO) test -- --test-threads=4
	./scripts/conformance.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	python3 scripts/imports.py

fmt:
	$(CARGO) fmt --all

bench: bench-proxy bench-instructions bench-certs bench-up bench-backup bench-upgrade

# difyctl vs nginx on the same upstream; prints a table (see BENCHMARKS.md).
bench-proxy:
	./bench/proxy.sh

# Instructions per proxied request (valgrind callgrind), difyctl vs nginx: repeatable where
# requests/s swing from run to run (see BENCHMARKS.md).
bench-instructions:
	./bench/instructions.sh

# Time to a first certificate against Pebble, difyctl vs certbot (see BENCHMARKS.md).
bench-certs:
	./bench/certs.sh

# Ten-service stack up (to all healthy) and down, difyctl vs docker-compose (see BENCHMARKS.md).
bench-up:
	./bench/up.sh

# 1 GB database + 2 GB of files: backup and restore, difyctl vs pg_dump + tar (see BENCHMARKS.md).
bench-backup:
	./bench/backup.sh

# v1 -> v2 of a stand-in stack: how long the api does not answer, difyctl upgrade vs
# docker-compose up -d (see BENCHMARKS.md).
bench-upgrade:
	./bench/upgrade.sh

# The whole main job with no internet: `difyctl up` on a Dify-shaped stand-in stack, with a
# certificate from Pebble (a local ACME CA); prints the URL and curl commands. Ctrl-C cleans up.
demo:
	./scripts/demo.sh

# The proxy in front of a stand-in Dify on :8080/:8443; Ctrl-C stops it.
demo-proxy:
	./scripts/demo-proxy.sh
