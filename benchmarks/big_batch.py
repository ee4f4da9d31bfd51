"""label_batch on big generated batches: samples/s and the flow process's peak RSS, on SQLite and PostgreSQL.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/big_batch.py [--sizes 10000 100000] [--pg-url URL]

Each run is a fresh subprocess (its own ephemeral Prefect API, a fresh store) that runs label_batch
with the zero-cost labeler and judge of benchmarks/routing_throughput.py, so only ingest, routing,
the store and export are measured. Peak RSS is the subprocess's own ru_maxrss (the ephemeral API
runs in a process of its own and is not counted); samples/s leaves out the Prefect start-up, and
samples per CPU second (the flow process's own CPU time) is the steadier figure on a shared machine.
PostgreSQL runs use ``--pg-url`` or $JURYFLOW_TEST_PG_URL, one throwaway schema each; without
either, only SQLite is measured. Targets (issue 15): peak RSS < 1 GB at 100k, and samples/s at the
largest size within 20% of samples/s at the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import contextlib
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: benchmarks._procs

from benchmarks._procs import pg_schemas  # noqa: E402
RSS_TARGET_MB = 1024
RATE_TOLERANCE = 0.2


def run_flow(input_path: str, store_url: str, data_dir: str, batch_size: int) -> dict:
    """In the subprocess: the timed label_batch run, its figures as a dict."""
    os.environ.update(
        {
            "JURYFLOW_CONFIG": str(Path(data_dir) / "none.yaml"),
            "JURYFLOW__DATA_DIR": data_dir,
            "JURYFLOW__STORE_URL": store_url,
            "JURYFLOW__INGEST__BATCH_SIZE": str(batch_size),
            "JURYFLOW__ROUTING__AUDIT_RATE": "0.05",
            # Several runs on a shared machine: the ephemeral API's 90 s default start-up limit is too short.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600",
        }
    )
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from routing_throughput import ZeroCostJudge, ZeroCostLabeler  # sets Prefect's quiet defaults too

    from tasks import resources

    resources.labeler = lambda cfg: ZeroCostLabeler()  # type: ignore[assignment]
    resources.judge = lambda cfg, critique=None: ZeroCostJudge()  # type: ignore[assignment]
    resources.constitution = lambda cfg: None  # type: ignore[assignment]

    from prefect import flow

    from flows.label_batch import label_batch

    @flow
    def warm_up() -> None:
        """Starts the ephemeral API, so that its start-up is not timed."""

    warm_up()
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = label_batch(input_path)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # this process only: steadier than wall time on a shared machine
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "ingested": summary["ingested"],
        "snapshot_rows": summary["snapshot_rows"],
        "human_pending": summary["human_pending"],
    }


def measure(backend: str, n: int, work: Path, pg_url: str | None, batch_size: int) -> dict:
    """One subprocess run of n samples on a fresh store."""
    from labeling.synthetic import generate, write_jsonl

    run_dir = work / f"{backend}-{n}"
    input_path = write_jsonl(generate(n, seed=1), run_dir / "input.jsonl")
    with contextlib.ExitStack() as cleanup:
        if backend == "postgres":
            assert pg_url is not None
            store_url = cleanup.enter_context(pg_schemas(pg_url, "big_batch"))()
        else:
            store_url = f"sqlite:///{run_dir / 'data' / 'juryflow.db'}"
        args = [sys.executable, __file__, "--child", str(input_path), store_url, str(run_dir / "data"), str(batch_size)]
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"big_batch: the {backend} run of {n} samples failed:\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"backend": backend, "n": n, **result, "samples_per_s": n / result["seconds"],
            "samples_per_cpu_s": n / result["cpu_seconds"]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        input_path, store_url, data_dir, batch_size = sys.argv[2:6]
        print(json.dumps(run_flow(input_path, store_url, data_dir, int(batch_size))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--pg-url", default=os.environ.get("JURYFLOW_TEST_PG_URL"), help="PostgreSQL URL (SQLAlchemy)")
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--batch-size", type=int, default=2_000, help="ingest.batch_size: samples per task call")
    args = parser.parse_args()
    backends = [b for b in args.backends if b != "postgres" or args.pg_url]
    if len(backends) < len(args.backends):
        print("big_batch: no --pg-url or $JURYFLOW_TEST_PG_URL, so PostgreSQL is skipped", file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="juryflow-big-batch-"))
    try:
        report(backends, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # inputs and stores: a few hundred MB at 100k


def report(backends: list[str], args: argparse.Namespace, work: Path) -> None:
    print(f"{'backend':9} {'samples':>8} {'seconds':>8} {'samples/s':>10} {'per CPU-s':>10} {'peak RSS MB':>12}")
    for backend in backends:
        results = []
        for n in args.sizes:
            r = measure(backend, n, work, args.pg_url, args.batch_size)
            results.append(r)
            rates = f"{r['samples_per_s']:10,.0f} {r['samples_per_cpu_s']:10,.0f}"
            line = f"{backend:9} {n:8d} {r['seconds']:8.1f} {rates} {r['peak_rss_mb']:12,.0f}"
            print(line, flush=True)
        small, big = results[0], results[-1]
        ratio = big["samples_per_s"] / small["samples_per_s"]
        cpu_ratio = big["samples_per_cpu_s"] / small["samples_per_cpu_s"]
        rss_ok = big["peak_rss_mb"] < RSS_TARGET_MB
        print(
            f"{backend:9} rate at {big['n']:,} / rate at {small['n']:,} = {ratio:.2f} per wall second, "
            f"{cpu_ratio:.2f} per CPU second (target >= {1 - RATE_TOLERANCE:.2f}); "
            f"peak RSS {'under' if rss_ok else 'OVER'} {RSS_TARGET_MB} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
