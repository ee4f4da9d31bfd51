"""The labeling DAG: ingest -> validate -> store -> AI label -> route -> judge -> accept or
escalate -> merge -> export, and the training trigger.

    python -m flows.label_batch data.jsonl        # or: juryflow run data.jsonl
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows._main import parser_for, run_main
from flows.summaries import label_batch_line
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
