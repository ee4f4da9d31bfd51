#!/usr/bin/env bash
# Sets everything up from scratch and runs the full test suite (CI runs exactly this).
#
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

# A throwaway PostgreSQL on 127.0.0.1 for the PostgreSQL variants of the store tests.
PG_LOG=$(mktemp /tmp/juryflow-pg-start.XXXXXX)
stop_pg() { eval "$(sed -n 's/^stop it with: //p' "$PG_LOG")" >/dev/null 2>&1 || true; }
if [[ -z "${JURYFLOW_TEST_PG_URL:-}" ]]; then
  JURYFLOW_TEST_PG_URL=$(bash scripts/start_test_postgres.sh 2>"$PG_LOG")
  export JURYFLOW_TEST_PG_URL
  trap stop_pg EXIT
fi

# Exit code 5 (nothing collected) fails too: a suite that ran no test has not passed.
# --durations=25: CI prints the slowest tests, so a new one that blows the 15-minute budget shows up.
.venv/bin/python -m pytest --durations=25 "$@"
