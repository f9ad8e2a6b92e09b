#!/bin/sh
# What the official postgres image's entrypoint does with the settings docker-compose.yml gives:
# on an empty data directory, a cluster whose superuser is POSTGRES_USER (password
# POSTGRES_PASSWORD, required over the network) and a database POSTGRES_DB; then the server,
# as user postgres, listening on every interface of the container.
set -eu
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ "${1:-}" = postgres ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?is required (as by the official image)}"
    user="${POSTGRES_USER:-postgres}"
    database="${POSTGRES_DB:-$user}"
    password="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password"
    chown postgres "$password"
    as_postgres initdb -D "$PGDATA" -U "$user" --encoding=UTF8 --pwfile="$password" \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$password"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    if [ "$database" != postgres ]; then
      echo "CREATE DATABASE \"$database\"" | as_postgres postgres --single -D "$PGDATA" postgres >/dev/null
    fi
  fi
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
fi
exec "$@"
