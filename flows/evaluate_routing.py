"""Replay a labeled file through calibrated, guaranteed routing and publish the report.

    juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --splits 200

The file's reference labels play the humans; see labeling/evaluate.py for the method.
"""

from __future__ import annotations

from prefect import flow

from tasks.evaluation import build_routing_report, load_labeled_samples, publish_routing_report, score_out_of_fold


@flow(name="evaluate-routing", log_prints=True)
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
    return report


if __name__ == "__main__":
    import sys

    evaluate_routing(*sys.argv[1:3])
