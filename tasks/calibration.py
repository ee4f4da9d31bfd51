"""Tasks of the ``recalibrate`` flow: audit set, drift check, calibration + thresholds, artifacts.

Each task works on the whole audit set at once (a few thousand rows at a 5% audit rate per
100k samples), reading through the store so it runs the same in any worker.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from labeling.calibration import (
    confidence_of,
    expected_calibration_error,
    fit_calibrator,
    plot_reliability,
    reliability_plot_path,
)
from labeling.drift import DRIFT_RECORD_KIND, check_drift, record_drift_alarm
from labeling.guarantee import ACTIVE_KEY, THRESHOLDS_RECORD_KIND, guaranteed_threshold
from labeling.schemas import LabelSource, RouteReason, SampleState, content_hash
from tasks import resources
from tasks.publish import publish_png

DRIFT_EVENT = "juryflow.routing.drift"


@task(name="load-audit-set", retries=2, retry_delay_seconds=[2, 10])
def load_audit_set() -> dict[str, list]:
    """Audit samples (route reason ``audit``) with a human majority, joined with the AI label
    and the judge verdict. Audits are the random sample of the stream; other human labels are
    selected by confidence or disagreement and would bias the fit (docs/routing-guarantee.md)."""
    st = resources.store()
    # Any state after routing can hold a human label (imports may land before the judge stage).
    states = (SampleState.labeled, SampleState.human_pending, SampleState.judge_pending)
    ids = sorted({sid for state in states for sid in st.ids_in_state(state)})
    routes = st.get_routes(ids)
    audit_ids = [sid for sid in ids if any(RouteReason.audit in r.reasons for r in routes.get(sid, {}).values())]
    # The humans' resolved answer (labeling.merge): majority, ties and skips handled in one place.
    finals = st.get_final_labels(audit_ids)
    ai = st.get_ai_labels(audit_ids)
    verdicts = st.get_verdicts(audit_ids)
    out: dict[str, list] = {
        k: [] for k in ("sample_id", "p_a", "labeler_version", "human_prefers_a", "judge_p_a", "judge_consistent")
    }
    for sid in audit_ids:
        final = finals.get(sid)
        choice = final.preferred if final is not None and final.source != LabelSource.judge else None
        if choice not in ("A", "B") or sid not in ai:
            continue  # no human decision yet, or a cold-start sample with no AI label to calibrate
        v = verdicts.get(sid)
        out["sample_id"].append(sid)
        out["p_a"].append(ai[sid].p_a)
        out["labeler_version"].append(ai[sid].labeler_version)
        out["human_prefers_a"].append(choice == "A")
        out["judge_p_a"].append(None if v is None or v.parse_error else v.p_a)
        out["judge_consistent"].append(bool(v is not None and v.parse_error is None and v.swap_consistent))
    return out


def _stale_ids(st: Any) -> set[str]:
    """Audits that described the stream before a drift alarm: never reused for fitting."""
    stale: set[str] = set()
    for _, alarm in st.list_records(DRIFT_RECORD_KIND):
        stale.update(alarm.get("stale_sample_ids", []))
    return stale


@task(name="check-routing-drift")
def check_routing_drift(audit: dict[str, list]) -> dict[str, Any]:
    """Test the audits that arrived since the active calibration, inside its auto-accept region."""
    cfg = resources.settings()
    st = resources.store(cfg)
    active = st.get_record(THRESHOLDS_RECORD_KIND, ACTIVE_KEY)
    if active is None or active.get("labeler_threshold") is None:
        return {"fired": False, "message": "no active guaranteed threshold: nothing to check"}
    seen = set(active.get("calibration_sample_ids", []))
    threshold = active["labeler_threshold"]
    accepted_correct = [
        (p >= 0.5) == y
        for sid, p, y in zip(audit["sample_id"], audit["p_a"], audit["human_prefers_a"], strict=True)
        if sid not in seen and max(p, 1 - p) >= threshold
    ]
    result = check_drift(accepted_correct, alpha=float(active["alpha"]))
    if not result.fired:
        return result.model_dump()
    alarm = record_drift_alarm(st, result, active)
    # Keep the pre-drift calibration set out of every later fit: it describes the old stream.
    st.put_record(DRIFT_RECORD_KIND, alarm["created_at"], {**alarm, "stale_sample_ids": sorted(seen)})
    emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": f"juryflow.thresholds.{active.get('version')}"},
        payload=result.model_dump(),
    )
    create_markdown_artifact(
        key="routing-drift",
        markdown=f"## Routing drift alarm\n\n{result.message}\n\nThresholds tightened: everything routes onward "
        "to the judge and humans until the next calibration has enough fresh audit labels.",
        description="juryflow routing drift",
    )
    return {**result.model_dump(), "stale": len(seen)}


@task(name="fit-guaranteed-thresholds")
def fit_guaranteed_thresholds(audit: dict[str, list], drift: dict[str, Any]) -> dict[str, Any]:
    """Calibrate the labeler, pick guaranteed labeler and judge thresholds, record the version."""
    cfg = resources.settings()
    st = resources.store(cfg)
    r = cfg.routing
    stale = _stale_ids(st)
    keep = [i for i, sid in enumerate(audit["sample_id"]) if sid not in stale]
    # Calibrate one labeler version at a time: the one with the most audits (normally the active one).
    versions = [audit["labeler_version"][i] for i in keep]
    labeler_version = max(set(versions), key=versions.count) if versions else None
    keep = [i for i in keep if audit["labeler_version"][i] == labeler_version]
    ids = [audit["sample_id"][i] for i in keep]
    p_a = np.array([audit["p_a"][i] for i in keep], dtype=float)
    prefers_a = np.array([audit["human_prefers_a"][i] for i in keep], dtype=bool)
    correct = (p_a >= 0.5) == prefers_a
    conf = confidence_of(p_a)
    labeler = guaranteed_threshold(conf, correct, r.alpha, r.delta, r.min_calibration_size, stage="labeler")
    calibrator = fit_calibrator(p_a, prefers_a, r.calibration_method) if len(keep) else None

    jp = [audit["judge_p_a"][i] for i in keep]
    has_judge = np.array([p is not None for p in jp], dtype=bool)
    j_p = np.array([p if p is not None else 0.5 for p in jp], dtype=float)[has_judge]
    j_correct = ((j_p >= 0.5) == prefers_a[has_judge]) if has_judge.any() else np.array([], bool)
    j_consistent = np.array([audit["judge_consistent"][i] for i in keep], dtype=bool)[has_judge]
    judge = guaranteed_threshold(
        confidence_of(j_p), j_correct, r.alpha, r.delta, r.min_calibration_size, stage="judge", eligible=j_consistent
    )

    version = content_hash("thresholds", labeler_version, ids, r.alpha, r.delta, r.calibration_method)
    payload = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "labeler_version": labeler_version,
        "labeler_threshold": labeler.threshold,
        "judge_threshold": judge.threshold,
        "calibrator": calibrator.model_dump() if calibrator else None,
        "alpha": r.alpha,
        "delta": r.delta,
        "drift": bool(drift.get("fired")),
        "n_audit": len(keep),
        "ece_raw": expected_calibration_error(conf, correct) if len(keep) else None,
        "ece_calibrated": expected_calibration_error(calibrator.calibrate_confidence(conf), correct)
        if calibrator
        else None,
        "labeler": labeler.summary(),
        "judge": judge.summary(),
        "status": (
            f"DRIFT alarm this run ({drift['message']}); refit on the {len(keep)} audits since. "
            if drift.get("fired")
            else ""
        )
        + f"{labeler.status}. {judge.status}.",
        "calibration_sample_ids": ids,
        "last_drift_check": drift.get("message"),
    }
    if payload["calibrator"] is None:
        payload.pop("calibrator")
    with st.atomic():
        if calibrator is not None:
            st.put_record(
                "calibration",
                f"{labeler_version}:{version}",
                {"labeler_version": labeler_version, **calibrator.model_dump()},
            )
        st.put_record(THRESHOLDS_RECORD_KIND, version, payload)
        st.put_record(THRESHOLDS_RECORD_KIND, ACTIVE_KEY, payload)
    payload["_plot_inputs"] = {"conf": conf.tolist(), "correct": correct.tolist()}
    return payload


@task(name="publish-calibration")
def publish_calibration(fit: dict[str, Any]) -> dict[str, Any]:
    """ECE, thresholds and the reliability diagram as Prefect artifacts."""
    fit = dict(fit)
    inputs = fit.pop("_plot_inputs")
    rows = [
        {"stage": s, "threshold": fit[s]["threshold"], "n_calibration": fit[s]["n_calibration"],
         "accepted": fit[s]["n_accepted"], "errors": fit[s]["errors"], "bound": fit[s]["upper_bound"],
         "coverage": fit[s]["coverage"], "labels_needed": fit[s]["labels_needed"]}
        for s in ("labeler", "judge")
    ]  # fmt: skip
    create_table_artifact(
        key="routing-thresholds", table=rows, description=f"thresholds {fit['version']}: {fit['status']}"
    )
    create_markdown_artifact(
        key="routing-calibration",
        markdown=(
            f"## Calibration {fit['version']}\n\nlabeler `{fit['labeler_version']}`, {fit['n_audit']} audit labels, "
            f"alpha {fit['alpha']}, delta {fit['delta']}\n\nECE (equal-mass bins): raw {fit['ece_raw']}, "
            f"calibrated {fit['ece_calibrated']}\n\n{fit['status']}"
        ),
    )
    if inputs["conf"] and fit.get("calibrator"):
        from labeling.calibration import ConfidenceCalibrator

        cal = ConfidenceCalibrator.model_validate(fit["calibrator"])
        conf = np.array(inputs["conf"])
        out = reliability_plot_path(resources.settings().data_dir, fit["version"])
        png = plot_reliability(
            {"raw": (conf, inputs["correct"]), "calibrated": (cal.calibrate_confidence(conf), inputs["correct"])}, out
        )
        publish_png(png, key="routing-reliability", description=f"reliability diagram {fit['version']}")
        fit["reliability_plot"] = str(png)
    fit.pop("calibration_sample_ids", None)
    return fit
