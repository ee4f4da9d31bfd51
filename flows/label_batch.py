"""The labeling DAG: ingest -> validate -> store -> AI label -> route -> judge -> accept or
escalate -> merge -> export, and the training trigger.

    python -m flows.label_batch data.jsonl        # or: juryflow run data.jsonl
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._main import parser_for, run_main
from flows.summaries import label_batch_line
from labeling.schemas import SampleState
from tasks import resources
from tasks.events import emit_labels_ready
from tasks.pipeline import ai_label_and_route, ingest_input, judge_and_merge, list_id_ranges
from tasks.publish import export_dataset, publish_run_summary
from tasks.runners import ConfiguredTaskRunner


# The chunk tasks run where the task_runner settings say, read as each run starts: by default
# one chunk at a time (SQLite has one writer; concurrent writers only wait on its lock); with
# PostgreSQL, threads or a Dask/Ray cluster (tasks/runners.py, flows/label_batch_cluster.py).
@flow(name="label-batch", task_runner=ConfiguredTaskRunner())
def label_batch(input_path: str | None = None, critique: bool | None = None) -> dict:
    chunk = resources.settings().ingest.batch_size
    ingested = ingest_input(input_path) if input_path else None
    labeled = ai_label_and_route.map(list_id_ranges(SampleState.new, chunk)).result()
    judged = judge_and_merge.map(list_id_ranges(SampleState.judge_pending, chunk), critique=critique).result()
    snapshot = export_dataset()
    emit_labels_ready(snapshot)
    summary = publish_run_summary(ingested, labeled, judged, snapshot)
    get_run_logger().info(label_batch_line(summary))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, "python -m flows.label_batch")
    parser.add_argument("input_path", nargs="?", help="JSONL, Parquet or datasets dir; omit to only process stored samples")

    def start(args):
        from juryflow.preflight import check_input_path
        from labeling.settings import load_settings

        load_settings()
        check_input_path(args.input_path)
        summary = label_batch(args.input_path)
        return summary, label_batch_line(summary)

    run_main(parser, start, argv)


if __name__ == "__main__":
    main()
