"""label_batch samples/s on each task runner: serial, Dask (2 workers) and Ray (2 workers), on PostgreSQL.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/task_runners.py [--n 3000] [--batch-size 100] [--pg-url URL]

One process, one temporary Prefect API, the same generated input labeled into a fresh PostgreSQL
schema per runner (``--pg-url`` or $JURYFLOW_TEST_PG_URL). The labeler and judge cost nothing
(tests/flows/counting_models.py, installed in every worker), so what is timed is orchestration,
routing and the store's writes. Each cluster is started before its run, with the arguments
tasks/runners.py would use, and the run joins it: start-up is printed apart, and samples/s
counts the label_batch run alone. Ratios are to the serial run's samples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.flows.counting_models, here and (via PYTHONPATH) in Ray's workers
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "600")


@contextmanager
def fresh_settings(work: Path, store_url: str, batch_size: int, **env: str):
    """This process's settings for one run; a cluster started inside inherits them."""
    saved = dict(os.environ)
    os.environ.update(JURYFLOW_CONFIG=str(work / "none.yaml"), JURYFLOW__DATA_DIR=str(work / "data"),
                      JURYFLOW__STORE_URL=store_url, JURYFLOW__INGEST__BATCH_SIZE=str(batch_size),
                      JURYFLOW__ROUTING__AUDIT_RATE="0.05", **env)  # fmt: skip
    (work / "data").mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def started_cluster(kind: str, workers: int):
    """Start the local cluster tasks/runners.py would start for ``kind``; yield the settings that join it."""
    from labeling.settings import TaskRunnerSettings
    from tasks.runners import build_task_runner

    from tests.flows import counting_models

    if kind == "serial":
        yield {}
        return
    if kind == "dask":
        from distributed import LocalCluster

        options = counting_models.dask_cluster_options()
        runner = build_task_runner(TaskRunnerSettings(kind="dask", workers=workers, cluster_options=options))
        with LocalCluster(**runner.cluster_kwargs) as cluster:
            cluster.wait_for_workers(workers)
            yield {"JURYFLOW__TASK_RUNNER__KIND": "dask", "JURYFLOW__TASK_RUNNER__ADDRESS": cluster.scheduler_address}
        return
    import ray

    from tasks.ray_runner import start_local_ray

    options = counting_models.ray_cluster_options()
    start_local_ray(build_task_runner(TaskRunnerSettings(kind="ray", workers=workers, cluster_options=options)).init_kwargs)
    try:
        yield {"JURYFLOW__TASK_RUNNER__KIND": "ray"}  # RayTaskRunner joins the Ray this process started
    finally:
        ray.shutdown()


def timed_run(kind: str, input_path: Path, work: Path, store_url: str, args) -> tuple[float, float, dict]:
    """(cluster start-up s, label_batch s, summary) for one runner."""
    from flows.label_batch import label_batch
    from tasks import resources

    from tests.flows import counting_models

    with fresh_settings(work, store_url, args.batch_size):
        if kind == "serial":
            counting_models.install()  # serial chunks run in this process
        t0 = time.perf_counter()
        with started_cluster(kind, args.workers) as join:
            startup = time.perf_counter() - t0
            os.environ.update(join)
            resources.release_models()
            t0 = time.perf_counter()
            summary = label_batch(str(input_path))
            run_s = time.perf_counter() - t0
    return startup, run_s, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=100, help="samples per chunk task")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-url", default=os.environ.get("JURYFLOW_TEST_PG_URL"))
    args = parser.parse_args()
    if not args.pg_url:
        sys.exit("error: no PostgreSQL URL: pass --pg-url or export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh)")

    from prefect.testing.utilities import prefect_test_harness

    from benchmarks._procs import pg_schemas
    from labeling.synthetic import generate, write_jsonl

    work = Path(tempfile.mkdtemp(prefix="juryflow-runners-"))
    input_path = write_jsonl(generate(args.n, seed=5), work / "input.jsonl")
    results = {}
    # One temporary API, shared with the workers.
    with pg_schemas(args.pg_url, "bench_runners") as fresh_store, prefect_test_harness(server_startup_timeout=600):
        for kind in ("serial", "dask", "ray"):
            results[kind] = timed_run(kind, input_path, work / kind, fresh_store(), args)

    serial_rate = args.n / results["serial"][1]
    print(f"samples {args.n}, chunks of {args.batch_size}, {args.workers} workers, PostgreSQL, zero-cost models")
    for kind, (startup, run_s, summary) in results.items():
        rate = args.n / run_s
        print(f"{kind:7s} start-up {startup:5.1f} s  run {run_s:6.1f} s = {rate:7,.0f} samples/s  "
              f"ratio to serial {rate / serial_rate:4.2f}x  (accepted {summary['judge_accepted']}, "
              f"to humans {summary['human_pending']}, snapshot {Path(summary['snapshot_path']).name})")  # fmt: skip
    print(json.dumps({k: {"startup_s": round(v[0], 2), "run_s": round(v[1], 2)} for k, v in results.items()}))


if __name__ == "__main__":
    main()
