"""Label Studio round trip: juryflow's push rate against a raw SDK bulk import, and harvest time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/labelstudio_roundtrip.py --n 1000

Starts a local server in a temporary directory (copying the migrated template the tests build,
/tmp/juryflow-ls-template-1.23.2, when present; otherwise it migrates a fresh one, ~1 min), or
uses --url/--token. Targets: push rate >= 0.9 x raw import rate; harvest of n annotated tasks <= 2 s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labeling.labelstudio.client import LabelStudioClient, choice_result, project_title  # noqa: E402
from labeling.labelstudio.push import build_task, push_samples  # noqa: E402
from labeling.labelstudio.server import LABEL_STUDIO_VERSION  # noqa: E402
from labeling.store import HumanTask  # noqa: E402
from benchmarks._procs import start_labelstudio  # noqa: E402
from labeling.schemas import AILabel, JudgeVerdict, Route, RouteReason, Sample  # noqa: E402


def seed_review_queue(store, n: int, prefix: str = "b") -> list[str]:
    """n human_pending samples, routed the way label_batch routes a judge disagreement."""
    samples = [Sample(sample_id=f"{prefix}{i:06d}", prompt=f"Prompt {i}: " + "words " * 40,
                      response_a="reply A " * 30, response_b="reply B " * 30) for i in range(n)]
    ids = [s.sample_id for s in samples]
    store.add_samples(samples, source="benchmark")
    store.record_ai_labels([AILabel(sample_id=i, p_a=0.9, labeler_name="emb", labeler_version="v1") for i in ids])
    store.record_routes([Route(sample_id=i, to_judge=True, to_human=False, reasons=[RouteReason.high_confidence])
                         for i in ids], stage="labeler")
    store.record_verdicts([JudgeVerdict(sample_id=i, p_a_original=0.2, p_a_swapped=0.3, model="m", version="j1")
                           for i in ids])
    store.record_routes([Route(sample_id=i, to_judge=False, to_human=True, reasons=[RouteReason.judge_disagrees])
                         for i in ids], stage="judge")
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print where the harvest spends its time")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="juryflow-ls-bench-"))
    server = None
    if args.url:
        url, token = args.url, args.token
    else:
        server = start_labelstudio(work, timeout_s=900)
        url, token = server.url, server.token
    os.environ.update({"JURYFLOW_CONFIG": str(work / "none.yaml"), "JURYFLOW__DATA_DIR": str(work / "data"),
                       "JURYFLOW__LABELSTUDIO__URL": url, "JURYFLOW__LABELSTUDIO__API_KEY": token,
                       "JURYFLOW__CAMPAIGN": "bench"})
    from tasks import resources
    from tasks.review import harvest

    try:
        cfg = resources.settings()
        store = resources.store(cfg)
        client = LabelStudioClient(url, token)
        raw_project = client.ensure_project("bench raw import", 1)
        project = client.ensure_project(project_title(cfg), 1)
        # Warm the server up (its first requests load code and caches), then alternate raw and push
        # rounds on fresh samples and keep each one's best time: the machine is shared and noisy.
        client.sdk.projects.import_tasks(client.ensure_project("bench warm-up", 1), request=[
            build_task(s) for s in store.get_samples(seed_review_queue(store, 20, prefix="w"))])
        raw_times, push_times = [], []
        for round_ in range(args.rounds):
            ids = seed_review_queue(store, args.n, prefix=f"r{round_}-")
            samples = store.get_samples(ids)  # tasks carry the pair only (annotators judge blind)
            payload = [build_task(s) for s in samples]
            t0 = time.perf_counter()  # raw SDK: the same task payloads, one bulk import, nothing else
            client.sdk.projects.import_tasks(raw_project, request=payload, return_task_ids=True)
            raw_times.append(time.perf_counter() - t0)
            push_ids = seed_review_queue(store, args.n, prefix=f"p{round_}-")
            t0 = time.perf_counter()
            push_samples(store, client, project, push_ids)
            push_times.append(time.perf_counter() - t0)
        raw_s, push_s = min(raw_times), min(push_times)

        # Harvest: n tasks annotated on import (per-annotation API calls would take minutes to set up).
        harvest_ids = seed_review_queue(store, args.n, prefix="h")
        harvest_project = client.ensure_project("bench harvest", 1)
        me = client.sdk.users.whoami().id
        samples = store.get_samples(harvest_ids)
        answer = {"annotations": [{"result": [choice_result("A")], "completed_by": me}]}
        annotated = [build_task(s) | answer for s in samples]
        t0 = time.perf_counter()
        created = client.sdk.projects.import_tasks(harvest_project, request=annotated, return_task_ids=True)
        annotate_s = time.perf_counter() - t0
        store.record_human_tasks([HumanTask(sample_id=s.sample_id, project_id=harvest_project, task_id=t)
                                  for s, t in zip(samples, created.task_ids, strict=True)])
        profiler = cProfile.Profile() if args.profile else None
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        out = harvest.fn(harvest_project)
        harvest_s = time.perf_counter() - t0
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        assert out["final_labels"] == args.n, out

        print(f"n={args.n} tasks, Label Studio {LABEL_STUDIO_VERSION} at 127.0.0.1")
        print(f"best of {args.rounds} rounds; raw {[round(t, 2) for t in raw_times]} s, push {[round(t, 2) for t in push_times]} s")
        print(f"raw SDK import        {raw_s:6.2f} s  {args.n / raw_s:7.0f} tasks/s")
        print(f"juryflow push         {push_s:6.2f} s  {args.n / push_s:7.0f} tasks/s  "
              f"ratio {raw_s / push_s:.2f} (target >= 0.9)")
        print(f"import {args.n} annotated tasks (setup) {annotate_s:6.2f} s")
        print(f"juryflow harvest      {harvest_s:6.2f} s  for {args.n} annotated tasks (target <= 2 s)")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
