"""Two label_batch processes over overlapping inputs at once, on one PostgreSQL store.

Start a throwaway server with ``export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh)``.
Both processes report to the session's Prefect API, so neither pays the ephemeral start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from benchmarks._procs import pg_schemas

PG_URL = os.environ.get("JURYFLOW_TEST_PG_URL")
PG_SKIP = "needs PostgreSQL: export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh)"
REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.requires_postgres,
    pytest.mark.skipif(not PG_URL, reason=PG_SKIP),
]

# Columns that legitimately differ between runs: write times, and which file first brought a
# shared sample in (either process may win that race; the content is the same).
VOLATILE = {"updated_at", "created_at"}
VOLATILE_BY_TABLE = {"samples": {"source"}}
COMPARED = ("samples", "ai_labels", "routes", "judge_verdicts", "final_labels", "human_labels", "quarantine")


@pytest.fixture
def pg_schema_url() -> Iterator:
    """A factory of fresh PostgreSQL schemas (search_path in the URL), all dropped afterwards."""
    assert PG_URL is not None
    with pg_schemas(PG_URL, "concurrent") as make:
        yield make


def _rounded(value):
    # Batch composition differs between runs (chunks, padding), so model outputs may differ in the
    # last float bits; anything that matters for routing is far coarser than 1e-4.
    return round(value, 4) if isinstance(value, float) else value


def store_rows(url: str) -> dict[str, list[str]]:
    from labeling import store as store_module
    from labeling.store import Store

    st = Store(url)
    out = {}
    with st._engine.connect() as conn:
        for table in store_module.md.sorted_tables:
            skip = VOLATILE | VOLATILE_BY_TABLE.get(table.name, set())
            cols = [c for c in table.columns if c.name not in skip]
            rows = conn.execute(select(*cols)).all()
            out[table.name] = sorted(json.dumps([_rounded(v) for v in r], sort_keys=True, default=str) for r in rows)
    st.close()
    return out


def duplicate_keys(url: str) -> dict[str, list]:
    """Keys that occur more than once, per uniqueness rule (empty lists when the store is sound)."""
    from labeling import store as store_module
    from labeling.store import Store

    st = Store(url)
    rules = {
        "samples": ["sample_id"],
        "final_labels": ["sample_id"],
        "ai_labels": ["sample_id", "labeler_version"],
        "judge_verdicts": ["sample_id", "version"],
        "routes": ["sample_id", "stage"],
    }
    out = {}
    with st._engine.connect() as conn:
        for name, keys in rules.items():
            table = store_module.md.tables[name]
            cols = [table.c[k] for k in keys]
            out[name] = conn.execute(select(*cols).group_by(*cols).having(func.count() > 1)).all()
    st.close()
    return out


def run_env(base: Path, store_url: str, tiny_judge_dir: Path, fitted_head_dir: Path) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("JURYFLOW__")}
    env.update(
        JURYFLOW_CONFIG=str(base / "juryflow.yaml"),  # absent: defaults plus the variables below
        JURYFLOW__DATA_DIR=str(base / "data"),
        JURYFLOW__STORE_URL=store_url,
        JURYFLOW__JUDGE__MODEL_PATH=str(tiny_judge_dir),
        JURYFLOW__LABELER__MODEL_PATH=str(fitted_head_dir),
        JURYFLOW__INGEST__BATCH_SIZE="16",  # many small chunks, so the two runs interleave
        JURYFLOW__ROUTING__AUDIT_RATE="0.1",
        PREFECT_API_URL=PREFECT_API_URL.value(),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def flow_run_window(input_path: Path) -> tuple:
    """Start and end of the one flow run so far with this input, from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        recent = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
    runs = [r for r in recent if r.parameters.get("input_path") == str(input_path)]
    assert len(runs) == 1, f"expected one flow run for {input_path}, found {len(runs)}"
    return runs[0].start_time, runs[0].end_time


def test_overlapping_concurrent_runs_equal_a_sequential_run(
    prefect_harness, tmp_path, pg_schema_url, tiny_judge_dir, fitted_head_dir, monkeypatch
):
    from flows.label_batch import label_batch
    from labeling.store import Store
    from tasks import resources
    from labeling.synthetic import generate, write_jsonl

    rows = generate(96, seed=11)
    first = write_jsonl(rows[:64], tmp_path / "first.jsonl")
    second = write_jsonl(rows[32:], tmp_path / "second.jsonl")  # 32 samples in both files

    concurrent_url = pg_schema_url()
    procs = []
    for name, path in (("one", first), ("two", second)):
        env = run_env(tmp_path / name, concurrent_url, tiny_judge_dir, fitted_head_dir)
        log = open(tmp_path / f"{name}.log", "w")
        procs.append((name, log, subprocess.Popen([sys.executable, "-m", "flows.label_batch", str(path)],
                                                 cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)))
    for name, log, proc in procs:
        code = proc.wait(timeout=600)
        log.close()
        assert code == 0, f"label_batch {name} failed:\n{(tmp_path / f'{name}.log').read_text()[-4000:]}"

    (one_start, one_end), (two_start, two_end) = flow_run_window(first), flow_run_window(second)
    assert max(one_start, two_start) < min(one_end, two_end), "the two flow runs did not overlap in time"

    # The reference: the same flow on the same settings, one file after the other, in this process (the
    # claim is about the two processes above; two more process start-ups would only add CPU).
    sequential_url = pg_schema_url()
    env = run_env(tmp_path / "sequential", sequential_url, tiny_judge_dir, fitted_head_dir)
    for key in [k for k in os.environ if k.startswith("JURYFLOW__")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("JURYFLOW"):
            monkeypatch.setenv(key, value)
    resources.release_models()
    try:
        for path in (first, second):
            label_batch(str(path))
    finally:
        resources.release_models()

    dupes = duplicate_keys(concurrent_url)
    assert not any(dupes.values()), f"keys stored more than once: {dupes}"
    concurrent, sequential = store_rows(concurrent_url), store_rows(sequential_url)
    assert len(concurrent["samples"]) == 96
    assert len(concurrent["ai_labels"]) == 96, "every sample labeled once by the one labeler version"
    st = Store(concurrent_url)
    states = st.count_by_state()
    st.close()
    assert set(states) <= {"labeled", "human_pending"} and sum(states.values()) == 96, states
    assert concurrent["judge_verdicts"], "the judge path ran"
    for table in COMPARED:
        assert concurrent[table] == sequential[table], f"table {table} differs from a sequential run"

