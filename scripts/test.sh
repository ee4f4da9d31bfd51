#!/usr/bin/env bash
# Sets everything up from scratch and runs the full test suite (CI runs exactly this).
#
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

# A throwaway PostgreSQL on 127.0.0.1 for the PostgreSQL variants of the store tests; stopped and
# deleted at the end (each run's cluster is ~60 MB, which daily runs would pile up in /tmp).
if [[ -z "${JURYFLOW_TEST_PG_URL:-}" ]]; then
  PG_DIR=$(mktemp -d /tmp/juryflow-pg.XXXXXX)
  PG_LOG=$(mktemp /tmp/juryflow-pg-start.XXXXXX)
  stop_pg() {
    eval "$(sed -n 's/^stop it with: //p' "$PG_LOG")" >/dev/null 2>&1 || true
    rm -rf "$PG_DIR" "$PG_LOG"
  }
  trap stop_pg EXIT
  JURYFLOW_TEST_PG_URL=$(bash scripts/start_test_postgres.sh "$PG_DIR" 2>"$PG_LOG") \
    || { cat "$PG_LOG" >&2; exit 1; }
  export JURYFLOW_TEST_PG_URL
fi

# Exit code 5 (nothing collected) fails too: a suite that ran no test has not passed.
# --durations=25: CI prints the slowest tests, so a new one that blows the 15-minute budget shows up.
# Two worker processes (JURYFLOW_TEST_WORKERS=0 runs in one): tests are single-threaded
# (OMP_NUM_THREADS=1) and much of their time is spent waiting on servers, so the second core is
# otherwise idle. --dist loadfile keeps each file on one worker, in order, with its module fixtures.
# --no-loadscope-reorder hands files out in collection order, which tests/conftest.py sorts longest
# first; xdist's default order (most tests first) left the long one-test files for the end.
WORKERS=${JURYFLOW_TEST_WORKERS:-2}
XDIST=()
[[ "$WORKERS" != 0 ]] && XDIST=(-n "$WORKERS" --dist loadfile --no-loadscope-reorder)
.venv/bin/python -m pytest "${XDIST[@]}" --durations=25 "$@"
