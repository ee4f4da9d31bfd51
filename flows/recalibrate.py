"""Refit calibration and guaranteed routing thresholds from the latest audit labels.

    python -m flows.recalibrate          # or deploy it, triggered after harvest-reviews

First checks the audits that arrived since the active calibration for drift (and tightens
routing at once if they show it), then refits and records a new thresholds version.
"""

from __future__ import annotations

from prefect import flow

from tasks.calibration import check_routing_drift, fit_guaranteed_thresholds, load_audit_set, publish_calibration


@flow(name="recalibrate", log_prints=True)
def recalibrate() -> dict:
    audit = load_audit_set()
    drift = check_routing_drift(audit)
    fit = fit_guaranteed_thresholds(audit, drift)
    published = publish_calibration(fit)
    return {"drift": drift, "thresholds": published}


if __name__ == "__main__":
    recalibrate()
