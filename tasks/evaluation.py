"""Tasks of the ``evaluate-routing`` flow: out-of-fold scores, the report, its artifacts.

The data path and output directory are strings so that a deployment can pass them as
parameters; scoring is one task because each fold's labeler is fitted and used in one place.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from labeling.schemas import Sample
from tasks.publish import publish_png


@task(name="load-labeled-samples", cache_policy=NO_CACHE)
def load_labeled_samples(data: str) -> tuple[list[Sample], int]:
    """Samples with a reference label (the replay's human oracle), and how many rows were skipped (logged)."""
    from labeling.ingest import load_records, parse_records
    from labeling.settings import load_settings

    samples, problems = parse_records(load_records(Path(data)), load_settings().ingest)
    logger = get_run_logger()
    for problem in problems[:20]:
        logger.warning("skipped: %s", problem.message)
    if len(problems) > 20:
        logger.warning("... and %d more skipped rows", len(problems) - 20)
    return [s for s in samples if s.reference_label is not None], len(problems)


@task(name="score-out-of-fold", cache_policy=NO_CACHE, log_prints=False)  # no dill disassembly in the log
def score_out_of_fold(
    samples: list[Sample], folds: int, labeler: str, recipe: str | None, scores: str | None
) -> tuple[list[float], str]:
    """(p_a per sample, labeler kind): fitted per fold, or read back from an earlier run."""
    from labeling.evaluate import out_of_fold_p_a, read_out_of_fold
    from models.labelers.folds import fold_fitter

    if scores is not None:
        p_a, labeler = read_out_of_fold(Path(scores), samples)
        return p_a.tolist(), labeler
    with tempfile.TemporaryDirectory(prefix="juryflow-eval-") as work:
        p_a = out_of_fold_p_a(samples, folds, Path(work), fold_fitter(labeler, recipe))
    return p_a.tolist(), labeler


@task(name="build-routing-report", cache_policy=NO_CACHE)
def build_routing_report(samples: list[Sample], p_a: list[float], options: dict[str, Any], out: str) -> dict[str, Any]:
    """The report (curves, guarantee check, plots) written to ``out``, with the out-of-fold scores.

    ``options`` are the run's own (data, folds, labeler, splits, calibration_share, skipped_rows);
    alpha and delta default to ``routing.alpha`` / ``routing.delta`` from the settings.
    """
    import numpy as np

    from labeling.evaluate import build_report, write_out_of_fold
    from labeling.settings import load_settings

    routing = load_settings().routing
    alpha = routing.alpha if options.get("alpha") is None else options["alpha"]
    delta = routing.delta if options.get("delta") is None else options["delta"]
    out_dir, scores = Path(out), np.asarray(p_a, dtype=float)
    report = build_report(
        samples, scores, alpha=alpha, delta=delta, n_splits=options["splits"],
        calibration_share=options["calibration_share"], min_calibration_size=routing.min_calibration_size,
        method=routing.calibration_method, out_dir=out_dir,
    )  # fmt: skip
    report.update({k: options[k] for k in ("data", "folds", "labeler", "skipped_rows")})
    report["calibration_method"] = routing.calibration_method
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    write_out_of_fold(out_dir / "out_of_fold.jsonl", samples, scores, options["labeler"])
    return report


@task(name="publish-routing-report", cache_policy=NO_CACHE)
def publish_routing_report(report: dict[str, Any]) -> bool:
    return publish_report_artifacts(report)


def publish_report_artifacts(report: dict[str, Any]) -> bool:
    """Publish the report and its plot as Prefect artifacts; False outside a flow run."""
    if FlowRunContext.get() is None:
        return False
    g, pop = report["guarantee"], report["population_check"]
    figures = json.dumps({k: v for k, v in report.items() if k != "cost_quality"}, indent=1)
    create_markdown_artifact(
        key="routing-evaluation",
        markdown=(
            f"## Routing evaluation ({report['n_samples']} samples, {report.get('labeler', 'embedding')} labeler)\n\n"
            f"alpha {g['alpha']}, delta {g['delta']}: coverage {g['mean_coverage']:.1%}, "
            f"auto-label agreement {g['mean_auto_agreement']}, population violation rate "
            f"{pop['population_violation_rate']:.1%} over {pop['n_draws']} draws, efficiency {pop['efficiency']} "
            f"(split check: {g['violation_rate']:.1%} over {g['n_splits']} splits)\n\n```json\n{figures}\n```"
        ),
    )
    publish_png(report["plot"], key="routing-cost-quality", description="routing cost-quality curve")
    return True
