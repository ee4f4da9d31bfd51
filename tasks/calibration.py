"""Tasks of the ``recalibrate`` flow: audit set, drift check, calibration + thresholds, artifacts.

Each task works on the whole audit set at once (a few thousand rows at a 5% audit rate per
100k samples), reading through the store so it runs the same in any worker. The decisions
live in labeling/recalibration.py.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from labeling.calibration import ConfidenceCalibrator, plot_raw_and_calibrated, reliability_plot_path
from labeling import recalibration
from labeling.recalibration import AuditSet, DriftCheck
from tasks import resources
from tasks.publish import publish_png

DRIFT_EVENT = "juryflow.routing.drift"


@task(name="load-audit-set", retries=2, retry_delay_seconds=[2, 10])
def load_audit_set() -> AuditSet:
    """Audit samples with a human decision, joined with the AI label and the judge verdict."""
    cfg = resources.settings()
    return recalibration.load_audit_set(resources.store(cfg), cfg.routing)


@task(name="check-routing-drift")
def check_routing_drift(audit: AuditSet) -> dict[str, Any]:
    """Test the audits that arrived since the active calibration, inside its auto-accept region."""
    check = recalibration.check_routing_drift(resources.store(), audit)
    if check.fired:
        emit_event(
            event=DRIFT_EVENT,
            resource={"prefect.resource.id": f"juryflow.thresholds.{check.thresholds_version}"},
            payload=check.model_dump(),
        )
        create_markdown_artifact(
            key="routing-drift",
            markdown=f"## Routing drift alarm\n\n{check.message}\n\nThresholds tightened: everything routes onward "
            "to the judge and humans until the next calibration has enough fresh audit labels.",
            description="juryflow routing drift",
        )
    return check.model_dump()


@task(name="fit-guaranteed-thresholds")
def fit_guaranteed_thresholds(audit: AuditSet, drift: dict[str, Any]) -> dict[str, Any]:
    """Calibrate the labeler, pick guaranteed labeler and judge thresholds, record the version."""
    cfg = resources.settings()
    check = DriftCheck.model_validate(drift)
    fit = recalibration.fit_and_record_thresholds(resources.store(cfg), audit, cfg.routing, check)
    payload = fit.thresholds.model_dump(mode="json", exclude_unset=True)
    return {**payload, "_plot_inputs": {"conf": fit.confidence, "correct": fit.correct}}


def _threshold_rows(fit: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"stage": s, "threshold": fit[s]["threshold"], "n_calibration": fit[s]["n_calibration"],
         "accepted": fit[s]["n_accepted"], "errors": fit[s]["errors"], "bound": fit[s]["upper_bound"],
         "coverage": fit[s]["coverage"], "labels_needed": fit[s]["labels_needed"]}
        for s in ("labeler", "judge")
    ]  # fmt: skip


def _calibration_markdown(fit: dict[str, Any]) -> str:
    return (
        f"## Calibration {fit['version']}\n\nlabeler `{fit['labeler_version']}`, {fit['n_audit']} audit labels, "
        f"alpha {fit['alpha']}, delta {fit['delta']}\n\nECE (equal-mass bins): raw {fit['ece_raw']}, "
        f"calibrated {fit['ece_calibrated']}\n\n{fit['status']}"
    )


@task(name="publish-calibration")
def publish_calibration(fit: dict[str, Any]) -> dict[str, Any]:
    """ECE, thresholds and the reliability diagram as Prefect artifacts."""
    fit = dict(fit)
    inputs = fit.pop("_plot_inputs")
    description = f"thresholds {fit['version']}: {fit['status']}"
    create_table_artifact(key="routing-thresholds", table=_threshold_rows(fit), description=description)
    create_markdown_artifact(key="routing-calibration", markdown=_calibration_markdown(fit))
    if inputs["conf"] and fit.get("calibrator"):
        cal = ConfidenceCalibrator.model_validate(fit["calibrator"])
        out = reliability_plot_path(resources.settings().data_dir, fit["version"])
        png = plot_raw_and_calibrated(cal, inputs["conf"], inputs["correct"], out)
        publish_png(png, key="routing-reliability", description=f"reliability diagram {fit['version']}")
        fit["reliability_plot"] = str(png)
    fit.pop("calibration_sample_ids", None)
    return fit
