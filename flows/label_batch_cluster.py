"""label_batch with its chunk tasks on a Dask or Ray cluster (or threads), chosen per run.

    python -m flows.label_batch_cluster data.jsonl --runner dask --workers 2
    python -m flows.label_batch_cluster data.jsonl --runner ray --address ray://head:10001

Without --runner the task_runner settings decide, as they do for plain label_batch; a parameter
wins over the setting. Use a PostgreSQL store_url: SQLite has one writer, so parallel chunks wait.
"""

from __future__ import annotations

from prefect import flow

from flows._main import parser_for, run_main
from flows.label_batch import label_batch
from flows.summaries import label_batch_line
from tasks.runners import RunnerKind, build_task_runner, runner_settings, shared_prefect_api


@flow(name="label-batch-cluster")
def label_batch_cluster(input_path: str | None = None, critique: bool | None = None, runner: RunnerKind | None = None,
                        workers: int | None = None, address: str | None = None) -> dict:
    """label_batch as a subflow whose chunk tasks run on ``runner`` (default: task_runner.kind)."""
    task_runner = build_task_runner(runner_settings(runner, workers, address))
    return label_batch.with_options(task_runner=task_runner)(input_path=input_path, critique=critique)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, "python -m flows.label_batch_cluster")
    parser.add_argument("input_path", nargs="?", help="JSONL, Parquet or datasets dir; omit to only process stored samples")
    parser.add_argument("--runner", choices=["serial", "threads", "dask", "ray"], help="default: task_runner.kind")
    parser.add_argument("--workers", type=int, help="threads or cluster worker processes; default: task_runner.workers")
    parser.add_argument("--address", help="a running Dask scheduler or Ray cluster; default: start a local one")

    def start(args):
        from juryflow.preflight import check_input_path

        runner_settings(args.runner, args.workers, args.address)  # a bad value is one line here, not a failed run
        check_input_path(args.input_path)
        with shared_prefect_api():  # without PREFECT_API_URL, one temporary API for the flow and its workers
            summary = label_batch_cluster(args.input_path, runner=args.runner, workers=args.workers,
                                          address=args.address)  # fmt: skip
        return summary, label_batch_line(summary)

    run_main(parser, start, argv)


if __name__ == "__main__":
    main()
