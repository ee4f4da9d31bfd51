"""label_batch on a local Dask cluster and a local Ray, against a serial run, on PostgreSQL.

The models are tests/flows/counting_models.py: deterministic, so the three runs must leave the
same store and snapshot, and they log each load and chunk with the process id that did it.
Start a throwaway server with ``export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh)``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks._procs import pg_schemas
from tests.flows import counting_models

PG_URL = os.environ.get("JURYFLOW_TEST_PG_URL")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.requires_postgres,
    pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL: export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh)"),
]


@pytest.fixture(scope="module")
def pg_schema_url():
    """A factory of fresh PostgreSQL schemas (search_path in the URL), dropped after the module."""
    with pg_schemas(PG_URL, "runners") as make:
        yield make


@pytest.fixture(scope="module")
def input_path(tmp_path_factory) -> Path:
    from labeling.synthetic import generate, write_jsonl

    return write_jsonl(generate(150, seed=11), tmp_path_factory.mktemp("runners") / "input.jsonl")


def store_contents(url: str) -> dict[str, list[str]]:
    """Every row of every table, without write times; a snapshot's path is reduced to its id's folder."""
    from labeling import store as store_module
    from labeling.store import Store

    st = Store(url)
    out = {}
    with st._engine.connect() as conn:
        for table in store_module.md.sorted_tables:
            cols = [c for c in table.columns if c.name not in {"updated_at", "created_at"}]
            rows = [r._asdict() for r in conn.execute(select(*cols))]
            for row in rows:
                if table.name == "snapshots":
                    row["path"] = Path(row["path"]).name
            out[table.name] = sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
    st.close()
    return out


@contextmanager
def run_settings(base: Path, store_url: str, **env: str):
    """Fresh settings for one run, in this process's environment (which a local cluster's workers inherit)."""
    from tasks import resources

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("JURYFLOW__")]:
            mp.delenv(key)
        mp.setenv("JURYFLOW_CONFIG", str(base / "juryflow.yaml"))  # absent: defaults plus the variables below
        mp.setenv("JURYFLOW__DATA_DIR", str(base / "data"))
        mp.setenv("JURYFLOW__STORE_URL", store_url)
        mp.setenv("JURYFLOW__INGEST__BATCH_SIZE", "16")  # 10 chunks per stage, to spread over the workers
        mp.setenv("JURYFLOW__ROUTING__AUDIT_RATE", "0.1")
        for key, value in env.items():
            mp.setenv(key, value)
        (base / "data").mkdir(parents=True, exist_ok=True)
        resources.release_models()
        try:
            yield mp
        finally:
            resources.release_models()


def run_label_batch(base: Path, store_url: str, start, **env: str) -> dict:
    """Run ``start(monkeypatch)`` (a label_batch flow call) under run_settings; its store, snapshot and model log."""
    from labeling.export import load_snapshot

    with run_settings(base, store_url, **env) as mp:
        summary = start(mp)
    snapshot = load_snapshot(summary["snapshot_path"])
    return {
        "summary": summary,
        "store": store_contents(store_url),
        "snapshot": (Path(summary["snapshot_path"]).name, snapshot.to_list()),
        "events": counting_models.read_events(base / "data"),
    }


@pytest.fixture(scope="module")
def serial_run(prefect_harness, pg_schema_url, input_path, tmp_path_factory) -> dict:
    from flows.label_batch import label_batch

    def start(mp):
        counting_models.install(mp.setattr)  # serial chunks run in this process
        return label_batch(str(input_path))

    return run_label_batch(tmp_path_factory.mktemp("serial"), pg_schema_url(), start)


def assert_same_as_serial(run: dict, serial: dict) -> None:
    assert run["summary"]["ai_labeled"] == serial["summary"]["ai_labeled"] == 150
    assert serial["summary"]["judge_accepted"] > 0 and serial["summary"]["human_pending"] > 0, "both outcomes occur"
    for table, rows in serial["store"].items():
        assert run["store"][table] == rows, table
    assert run["snapshot"] == serial["snapshot"]


def assert_chunks_spread_and_models_loaded_once(events: list[tuple[int, str, int]]) -> None:
    by_pid = Counter((pid, event) for pid, event, _ in events)
    labeling_pids = {pid for pid, event, _ in events if event == "label"}
    judging_pids = {pid for pid, event, _ in events if event == "judge"}
    assert os.getpid() not in labeling_pids | judging_pids, "chunks ran in worker processes, not the flow's"
    assert len(labeling_pids) >= 2 and len(judging_pids) >= 2, events
    assert sum(n for _, event, n in events if event == "label") == 150
    assert any(by_pid[pid, "label"] >= 2 for pid in labeling_pids), "some worker ran several chunks"
    for pid in labeling_pids:
        assert by_pid[pid, "load-labeler"] == 1, (pid, events)
    for pid in judging_pids:
        assert by_pid[pid, "load-judge"] == 1, (pid, events)


@pytest.mark.slow
def test_dask_run_from_settings_equals_serial(serial_run, pg_schema_url, input_path, tmp_path_factory):
    from flows.label_batch import label_batch

    dask = run_label_batch(
        tmp_path_factory.mktemp("dask"), pg_schema_url(), lambda mp: label_batch(str(input_path)),
        JURYFLOW__TASK_RUNNER__KIND="dask", JURYFLOW__TASK_RUNNER__WORKERS="2",
        JURYFLOW__TASK_RUNNER__CLUSTER_OPTIONS=json.dumps(counting_models.dask_cluster_options()),
    )  # fmt: skip
    assert_same_as_serial(dask, serial_run)
    assert_chunks_spread_and_models_loaded_once(dask["events"])


@pytest.fixture(scope="module")
def ray_run_settings(prefect_harness, pg_schema_url, tmp_path_factory):
    """A local Ray started once for the module, as tasks/runners.py would start it for the Ray run's settings.

    Started here rather than by the flow's runner (which then joins it), with the retry of a slow
    start that the runner itself uses (tasks/ray_runner.py). Its processes keep the environment they
    start with, so the run's settings are set first, and the Ray test runs with the same ones.
    """
    import ray

    from labeling.settings import load_settings
    from tasks.ray_runner import start_local_ray
    from tasks.runners import build_task_runner

    options = counting_models.ray_cluster_options()
    base, url = tmp_path_factory.mktemp("ray"), pg_schema_url()
    env = {"JURYFLOW__TASK_RUNNER__KIND": "ray", "JURYFLOW__TASK_RUNNER__CLUSTER_OPTIONS": json.dumps(options)}
    with run_settings(base, url, **env):
        start_local_ray(build_task_runner(load_settings().task_runner).init_kwargs)
    yield base, url, env
    ray.shutdown()


@pytest.mark.slow
def test_ray_run_from_a_flow_parameter_equals_serial(serial_run, ray_run_settings, input_path):
    from flows.label_batch_cluster import label_batch_cluster

    base, url, env = ray_run_settings
    ray = run_label_batch(base, url, lambda mp: label_batch_cluster(str(input_path), runner="ray", workers=2), **env)
    assert_same_as_serial(ray, serial_run)
    assert_chunks_spread_and_models_loaded_once(ray["events"])
