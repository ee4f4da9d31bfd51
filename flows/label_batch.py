"""The labeling DAG: ingest -> validate -> store -> AI label -> route -> judge -> accept or
escalate -> merge -> export, and the training trigger.

    python -m flows.label_batch data.jsonl        # or: juryflow run data.jsonl
"""

from __future__ import annotations

import sys

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from labeling.schemas import SampleState
from tasks import resources
from tasks.events import emit_labels_ready
from tasks.pipeline import ai_label_and_route, ingest_input, judge_and_merge, list_sample_ids
from tasks.publish import export_dataset, publish_run_summary


# One chunk at a time by default: with SQLite there is one writer anyway, and concurrent
# writers only wait on each other's locks. With PostgreSQL, swap in a wider runner, e.g.
# label_batch.with_options(task_runner=ThreadPoolTaskRunner(max_workers=8)) or a Dask/Ray one.
@flow(name="label-batch", task_runner=ThreadPoolTaskRunner(max_workers=1))
def label_batch(input_path: str | None = None, critique: bool | None = None) -> dict:
    chunk = resources.settings().ingest.batch_size
    ingested = ingest_input(input_path) if input_path else None
    labeled = ai_label_and_route.map(list_sample_ids(SampleState.new, chunk)).result()
    judged = judge_and_merge.map(list_sample_ids(SampleState.judge_pending, chunk), critique=critique).result()
    snapshot = export_dataset()
    emit_labels_ready(snapshot)
    return publish_run_summary(ingested, labeled, judged, snapshot)


if __name__ == "__main__":
    label_batch(sys.argv[1] if len(sys.argv) > 1 else None)
