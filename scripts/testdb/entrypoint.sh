#!/bin/sh
# Entry point of the test database image (scripts/test-db-image.sh): PostgreSQL 15 and Redis
# from Debian's packages, started the way the official `postgres` and `redis` images start, so
# Dify's own compose settings work unchanged (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# PGDATA; `redis-server --requirepass ...`). Anything else is run as given.
set -eu

run_as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

if [ "${1:-}" = postgres ]; then
  shift
  : "${PGDATA:=/var/lib/postgresql/data}"
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  export PGDATA
  mkdir -p "$PGDATA" /run/postgresql
  chown postgres:postgres "$PGDATA" /run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    chown postgres "$pwfile"
    run_as_postgres initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
      run_as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
      run_as_postgres psql -q -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
      run_as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    echo "testdb: initialised $PGDATA for $POSTGRES_USER/$POSTGRES_DB"
  fi
  # Like the official image's STOPSIGNAL SIGINT: `docker stop` gets a fast shutdown (a smart
  # one would wait for every client to disconnect). `docker import` cannot set STOPSIGNAL.
  setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*' "$@" &
  pid=$!
  trap 'kill -INT "$pid"' TERM INT
  status=0
  while kill -0 "$pid" 2>/dev/null; do
    if wait "$pid"; then status=0; else status=$?; fi
  done
  exit "$status"
fi
exec "$@"
