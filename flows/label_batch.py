"""The labeling DAG: ingest -> validate -> store -> AI label -> route -> judge -> accept or
escalate -> merge -> export, and the training trigger.

    python -m flows.label_batch data.jsonl        # or: juryflow run data.jsonl
"""

from __future__ import annotations

import sys

from prefect import flow

from labeling.schemas import SampleState
from tasks import resources
from tasks.events import emit_labels_ready
from tasks.pipeline import ai_label_and_route, ingest_input, judge_and_merge, list_sample_ids
from tasks.publish import export_dataset, publish_run_summary


@flow(name="label-batch")
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
