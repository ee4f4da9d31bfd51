"""Refit calibration and guaranteed routing thresholds from the latest audit labels.

    python -m flows.recalibrate          # or deploy it, triggered after harvest-reviews

First checks the audits that arrived since the active calibration for drift (and tightens
routing at once if they show it), then refits and records a new thresholds version.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows._main import parser_for, run_main
from flows.summaries import recalibrate_line

from tasks.calibration import check_routing_drift, fit_guaranteed_thresholds, load_audit_set, publish_calibration


@flow(name="recalibrate")
def recalibrate() -> dict:
    audit = load_audit_set()
    drift = check_routing_drift(audit)
    fit = fit_guaranteed_thresholds(audit, drift)
    published = publish_calibration(fit)
    result = {"drift": drift, "thresholds": published}
    get_run_logger().info(recalibrate_line(result))
    return result


def main(argv: list[str] | None = None) -> None:
    def start(args):
        from labeling.settings import load_settings

        load_settings()
        result = recalibrate()
        return result, recalibrate_line(result)

    run_main(parser_for(__doc__, "python -m flows.recalibrate"), start, argv)


if __name__ == "__main__":
    main()
