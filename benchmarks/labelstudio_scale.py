"""Label Studio at 50k tasks: push and harvest of 1,000 tasks in a project that already holds 50,000,
against the same in an empty project, and push against the raw SDK bulk import in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/labelstudio_scale.py --existing 50000 --n 1000

Starts a local Label Studio server in a temporary directory (from the tests' migrated template when
present), or uses --url/--token. The big project is seeded with the SDK bulk import in batches of
--seed-batch tasks, recorded in the store as pushed, and harvested once, as a project that grew for months
(seeding 50k takes minutes). Then, in the empty project and in the big one, each of --rounds rounds times
a raw SDK import of n tasks, a juryflow push of n new tasks, and a harvest of n newly annotated tasks, and
keeps each one's best time (the machine is shared and noisy). Finally reconcile walks each project.
Targets (issue 15): push and harvest at 50k <= 1.5 x their cost in the empty project; push >= 0.9 x the
raw import rate; reconcile finds 0 unexplained differences.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._procs import start_labelstudio  # noqa: E402
from benchmarks.labelstudio_roundtrip import seed_review_queue  # noqa: E402
from labeling.labelstudio.client import LabelStudioClient, choice_result  # noqa: E402
from labeling.labelstudio.harvest import harvest_project  # noqa: E402
from labeling.labelstudio.push import build_task, push_samples  # noqa: E402
from labeling.labelstudio.reconcile import reconcile_project  # noqa: E402
from labeling.labelstudio.server import LABEL_STUDIO_VERSION  # noqa: E402
from labeling.schemas import Sample  # noqa: E402
from labeling.store import HumanTask, Store  # noqa: E402


def _payload(sample_ids: list[str]) -> list[dict]:
    """Tasks shaped like juryflow's (the same text sizes as seed_review_queue's samples)."""
    return [build_task(Sample(sample_id=i, prompt=f"Prompt {i}: " + "words " * 40, response_a="reply A " * 30,
                              response_b="reply B " * 30)) for i in sample_ids]


def seed_project(store: Store, client: LabelStudioClient, project_id: int, n: int, batch: int) -> float:
    """n tasks through the SDK bulk import, recorded as pushed; returns the seconds it took."""
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        ids = [f"old{project_id}-{i:07d}" for i in range(start, min(n, start + batch))]
        created = client.sdk.projects.import_tasks(project_id, request=_payload(ids), return_task_ids=True)
        store.record_human_tasks([HumanTask(sample_id=s, project_id=project_id, task_id=t)
                                  for s, t in zip(ids, created.task_ids, strict=True)])
        print(f"  seeded {start + len(ids)}/{n} tasks ({time.perf_counter() - t0:.0f} s)", flush=True)
    return time.perf_counter() - t0


def measure(store: Store, client: LabelStudioClient, project_id: int, n: int, rounds: int, tag: str) -> dict:
    """Best-of-rounds seconds for a raw SDK import, a push, and a harvest of n tasks in this project."""
    me = client.sdk.users.whoami().id
    harvest = {"annotators_per_task": 1, "max_annotators_on_tie": 1}
    times: dict[str, list[float]] = {"raw": [], "push": [], "harvest": []}
    for round_ in range(rounds):
        # Raw SDK: the same payloads, one bulk import, nothing else (recorded afterwards, untimed, so the
        # tasks count as pushed for the harvest and reconcile).
        raw_ids = seed_review_queue(store, n, prefix=f"{tag}raw{round_}-")
        payload = [build_task(s) for s in store.get_samples(raw_ids)]
        t0 = time.perf_counter()
        created = client.sdk.projects.import_tasks(project_id, request=payload, return_task_ids=True)
        times["raw"].append(time.perf_counter() - t0)
        store.record_human_tasks([HumanTask(sample_id=s, project_id=project_id, task_id=t)
                                  for s, t in zip(raw_ids, created.task_ids, strict=True)])

        push_ids = seed_review_queue(store, n, prefix=f"{tag}push{round_}-")
        t0 = time.perf_counter()
        result = push_samples(store, client, project_id, push_ids)
        times["push"].append(time.perf_counter() - t0)
        assert len(result.created) == n, result

        # Harvest: n tasks annotated on import (per-annotation API calls would take minutes to set up),
        # after an untimed harvest that reads the round's unannotated tasks, so the timed one reads these only.
        harvest_project(store, client, project_id, **harvest)
        ann_ids = seed_review_queue(store, n, prefix=f"{tag}ann{round_}-")
        answer = {"annotations": [{"result": [choice_result("A")], "completed_by": me}]}
        annotated = [build_task(s) | answer for s in store.get_samples(ann_ids)]
        created = client.sdk.projects.import_tasks(project_id, request=annotated, return_task_ids=True)
        store.record_human_tasks([HumanTask(sample_id=s, project_id=project_id, task_id=t)
                                  for s, t in zip(ann_ids, created.task_ids, strict=True)])
        t0 = time.perf_counter()
        summary, _ = harvest_project(store, client, project_id, **harvest)
        times["harvest"].append(time.perf_counter() - t0)
        assert summary.final_labels == n, summary
    print(f"  {tag}: " + ", ".join(f"{k} {[round(t, 2) for t in v]} s" for k, v in times.items()), flush=True)
    return {k: min(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=50_000, help="tasks already in the big project")
    parser.add_argument("--n", type=int, default=1000, help="tasks pushed, and tasks harvested, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-batch", type=int, default=5000, help="tasks per SDK bulk import while seeding")
    parser.add_argument("--store-url", help="default: SQLite in the temporary directory")
    parser.add_argument("--url")
    parser.add_argument("--token")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="juryflow-ls-scale-"))
    server = None
    try:
        if args.url:
            url, token = args.url, args.token
        else:
            server = start_labelstudio(work, timeout_s=900)
            url, token = server.url, server.token
        store = Store(args.store_url or f"sqlite:///{work / 'store.db'}")
        client = LabelStudioClient(url, token)
        # Warm the server up: its first requests load code and caches.
        warm = client.ensure_project(f"scale warm-up {work.name}", 1)
        client.sdk.projects.import_tasks(warm, request=_payload([f"w{i}" for i in range(50)]))
        empty = client.ensure_project(f"scale empty {work.name}", 1)
        big = client.ensure_project(f"scale {args.existing} {work.name}", 1)

        print(f"seeding {args.existing} tasks into project {big} (SDK bulk import, {args.seed_batch} per call)")
        seed_s = seed_project(store, client, big, args.existing, args.seed_batch)
        t0 = time.perf_counter()
        harvest_project(store, client, big, annotators_per_task=1, max_annotators_on_tie=1)  # sets the watermark
        first_harvest_s = time.perf_counter() - t0
        harvest_project(store, client, empty, annotators_per_task=1, max_annotators_on_tie=1)

        small = measure(store, client, empty, args.n, args.rounds, "empty")
        large = measure(store, client, big, args.n, args.rounds, f"at{args.existing}")
        reconciled = {}
        for name, project in (("empty", empty), ("big", big)):
            t0 = time.perf_counter()
            summary = reconcile_project(store, client, project)
            reconciled[name] = (time.perf_counter() - t0, summary)

        n = args.n
        print(f"\nLabel Studio {LABEL_STUDIO_VERSION} at 127.0.0.1, store {store.url.split(':')[0]}, n={n}, "
              f"best of {args.rounds} rounds")
        print(f"seed {args.existing} tasks (SDK bulk import)   {seed_s:7.1f} s  {args.existing / seed_s:6.0f} tasks/s")
        print(f"first harvest of the {args.existing}-task project {first_harvest_s:7.1f} s")
        print(f"{'':28s} {'empty':>9s} {f'at {args.existing}':>9s} {'ratio':>6s}  target")
        for key, target in (("raw", ""), ("push", "<= 1.5"), ("harvest", "<= 1.5")):
            print(f"{key + ' ' + str(n) + ' tasks (s)':28s} {small[key]:9.2f} {large[key]:9.2f} "
                  f"{large[key] / small[key]:6.2f}  {target}")
        for name, res in (("empty", small), (f"at {args.existing}", large)):
            print(f"push rate / raw SDK import rate, {name}: {res['raw'] / res['push']:.2f} (target >= 0.9)")
        for name, (seconds, summary) in reconciled.items():
            print(f"reconcile {name} project: {seconds:6.1f} s  {summary.line()}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
