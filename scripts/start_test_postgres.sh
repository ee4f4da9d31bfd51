#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for the store tests, and print its URL.
#
#   export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh [DATA_DIR])
#   .venv/bin/python -m pytest tests/labeling/test_store.py -q
#   pg_ctl -D DATA_DIR stop          # the script prints the exact stop command on stderr
#
# Needs the PostgreSQL server binaries (initdb, pg_ctl); on Debian/Ubuntu:
#   apt-get update && apt-get install -y postgresql
# When run as root it runs the server as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

find_bin() {
    local name=$1 candidate
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/$name" ]]; then echo "$candidate/$name"; return; fi
    done
    echo "error: $name not found; install the server: apt-get update && apt-get install -y postgresql" >&2
    exit 1
}

INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)
CREATEDB=$(find_bin createdb)
DATA_DIR=${1:-$(mktemp -d /tmp/juryflow-pg.XXXXXX)}
DB_USER=juryflow
DB_NAME=juryflow_test
# A free port: bind to port 0 and let the kernel pick one.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

mkdir -p "$DATA_DIR"
as_server_user=()
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$DATA_DIR"
    as_server_user=(runuser -u postgres --)
fi

if [[ ! -f "$DATA_DIR/PG_VERSION" ]]; then
    # trust auth on 127.0.0.1 only: this cluster is a disposable test fixture, never a real server.
    INITDB_LOG=$(mktemp /tmp/juryflow-initdb.XXXXXX.log)  # outside DATA_DIR: initdb wants it empty
    "${as_server_user[@]}" "$INITDB" -D "$DATA_DIR" -U "$DB_USER" --auth=trust -E UTF8 --locale=C.UTF-8 >"$INITDB_LOG" 2>&1 \
        || { cat "$INITDB_LOG" >&2; exit 1; }
    rm -f "$INITDB_LOG"
fi
"${as_server_user[@]}" "$PG_CTL" -D "$DATA_DIR" -l "$DATA_DIR/server.log" -w -t 60 \
    -o "-p $PORT -h 127.0.0.1 -k $DATA_DIR -c fsync=off -c max_connections=100" start >/dev/null \
    || { cat "$DATA_DIR/server.log" >&2; exit 1; }
"${as_server_user[@]}" "$CREATEDB" -h 127.0.0.1 -p "$PORT" -U "$DB_USER" "$DB_NAME"

echo "stop it with: ${as_server_user[*]} $PG_CTL -D $DATA_DIR stop" >&2
echo "postgresql+psycopg://$DB_USER@127.0.0.1:$PORT/$DB_NAME"
