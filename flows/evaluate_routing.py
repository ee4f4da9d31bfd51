"""Replay a labeled file through calibrated, guaranteed routing and publish the report.

    juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --splits 200

The file's reference labels play the humans; see labeling/evaluate.py for the method.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._main import parser_for, run_main
from flows.summaries import evaluate_routing_line

from tasks.evaluation import build_routing_report, load_labeled_samples, publish_routing_report, score_out_of_fold


@flow(name="evaluate-routing")
def evaluate_routing(
    data: str,
    out: str = "juryflow-eval",
    folds: int = 5,
    splits: int = 100,
    calibration_share: float = 0.5,
    alpha: float | None = None,
    delta: float | None = None,
    labeler: str = "embedding",
    recipe: str | None = "recipes/labeler_cross_encoder.yaml",
    scores: str | None = None,
) -> dict:
    samples, skipped = load_labeled_samples(data)
    p_a, labeler = score_out_of_fold(samples, folds, labeler, recipe, scores)
    options = {"data": data, "folds": folds, "labeler": labeler, "splits": splits, "alpha": alpha, "delta": delta,
               "calibration_share": calibration_share, "skipped_rows": skipped}  # fmt: skip
    report = build_routing_report(samples, p_a, options, out)
    publish_routing_report(report)
    get_run_logger().info(evaluate_routing_line(report))
    return report


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, "python -m flows.evaluate_routing")
    parser.add_argument("data", help="a labeled JSONL/Parquet file (reference labels play the humans)")
    parser.add_argument("out", nargs="?", default="juryflow-eval", help="report directory")

    def start(args):
        from juryflow.preflight import check_input_path

        check_input_path(args.data)
        report = evaluate_routing(args.data, args.out)
        return report, evaluate_routing_line(report)

    run_main(parser, start, argv)


if __name__ == "__main__":
    main()
