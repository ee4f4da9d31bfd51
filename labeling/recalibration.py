"""The recalibrate flow's decisions: the audit set, the drift check since the active calibration,
and the fit of a new guaranteed thresholds version (docs/routing-guarantee.md).

Audits (route reason ``audit``) are the random sample of the stream; other human labels are
selected by confidence or disagreement and would bias the fit. Audits that described the stream
before a drift alarm are stale: they are never reused for fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from labeling.audit_design import drawn_for_audit
from labeling.calibration import confidence_of, expected_calibration_error, fit_calibrator
from labeling.drift import DriftResult, check_drift
from labeling.guarantee import guaranteed_threshold
from labeling.records import (
    CalibrationRecord,
    DriftAlarm,
    Thresholds,
    list_drift_alarms,
    read_active_thresholds,
    write_active_thresholds,
    write_calibration,
    write_drift_alarm,
    write_thresholds,
)
from labeling.schemas import LabelSource, SampleState, content_hash
from labeling.settings import RoutingSettings

if TYPE_CHECKING:
    from labeling.store import Store


class AuditSet(BaseModel):
    """Audited samples with a human decision, one column per field, joined with the AI label and verdict."""

    sample_id: list[str] = []
    p_a: list[float] = []
    labeler_version: list[str] = []
    human_prefers_a: list[bool] = []
    judge_p_a: list[float | None] = []  # None: no verdict, or an unparseable one
    judge_consistent: list[bool] = []
    # Every AI-labeled sample of the stream (audited or not), for the test of focused audits.
    stream_sample_id: list[str] = []
    stream_p_a: list[float] = []
    stream_labeler_version: list[str] = []

    def __len__(self) -> int:
        return len(self.sample_id)


class DriftCheck(BaseModel):
    """What the drift check found; ``stale`` audits were set aside when it fired."""

    fired: bool = False
    message: str
    thresholds_version: str | None = None
    n: int = 0
    errors: int = 0
    p_value: float | None = None
    stale: int = 0


@dataclass(frozen=True)
class ThresholdFit:
    """A recorded thresholds version, and the (confidence, correct) pairs for its reliability diagram."""

    thresholds: Thresholds
    confidence: list[float]
    correct: list[bool]


def load_audit_set(store: Store, routing: RoutingSettings | None = None) -> AuditSet:
    """Audit samples whose humans have decided, with their AI label (cold-start audits have none: skipped);
    with focused audits in ``routing``, also every AI-labeled sample's confidence (their test needs them)."""
    with_stream = routing is not None and routing.audit_design.focused
    # Any state after routing can hold a human label (imports may land before the judge stage).
    states = (SampleState.labeled, SampleState.human_pending, SampleState.judge_pending)
    ids = sorted({sid for state in states for sid in store.ids_in_state(state)})
    routes = store.get_routes(ids)
    audit_ids = [sid for sid in ids if drawn_for_audit(routes.get(sid, {}))]
    # The humans' resolved answer (labeling.merge): majority, ties and skips handled in one place.
    finals = store.get_final_labels(audit_ids)
    ai, verdicts = store.get_ai_labels(audit_ids), store.get_verdicts(audit_ids)
    out = AuditSet()
    if with_stream:
        for label in store.get_ai_labels(ids).values():
            out.stream_sample_id.append(label.sample_id)
            out.stream_p_a.append(label.p_a)
            out.stream_labeler_version.append(label.labeler_version)
    for sid in audit_ids:
        final = finals.get(sid)
        choice = final.preferred if final is not None and final.source != LabelSource.judge else None
        if choice not in ("A", "B") or sid not in ai:
            continue  # no human decision yet, or a cold-start sample with no AI label to calibrate
        v = verdicts.get(sid)
        out.sample_id.append(sid)
        out.p_a.append(ai[sid].p_a)
        out.labeler_version.append(ai[sid].labeler_version)
        out.human_prefers_a.append(choice == "A")
        out.judge_p_a.append(None if v is None or v.parse_error else v.p_a)
        out.judge_consistent.append(bool(v is not None and v.parse_error is None and v.swap_consistent))
    return out


def auto_accepted_correct(active: Thresholds, audit: AuditSet) -> list[bool]:
    """Whether the labeler was right on each audit that arrived since ``active`` was fitted and that
    ``active`` auto-accepts: the sample whose error rate the guarantee bounds by alpha."""
    seen = set(active.calibration_sample_ids)
    threshold = active.labeler_threshold
    if threshold is None:
        return []  # nothing is auto-accepted, so nothing can be wrongly auto-accepted
    return [
        (p >= 0.5) == y
        for sid, p, y in zip(audit.sample_id, audit.p_a, audit.human_prefers_a, strict=True)
        if sid not in seen and max(p, 1 - p) >= threshold
    ]


def tightened(active: Thresholds, result: DriftResult, now: str) -> Thresholds:
    """The active thresholds after a drift alarm: auto-accept nothing until recalibrate refits."""
    status = (
        f"DRIFT ALARM at {now}: {result.message}. Routing everything onward to the judge/humans "
        "until `recalibrate` fits new thresholds."
    )
    off = {"labeler_threshold": None, "judge_threshold": None, "drift": True, "status": status}
    return active.model_copy(update=off)


def check_routing_drift(store: Store, audit: AuditSet) -> DriftCheck:
    """Test the audits since the active calibration; on an alarm, record it and tighten routing at once.

    The alarm keeps the active calibration's audits as stale (they describe the old stream); the
    calibrated record of that version stays under its own key for the audit trail.
    """
    active = read_active_thresholds(store)
    if active is None or active.labeler_threshold is None:
        return DriftCheck(message="no active guaranteed threshold: nothing to check")
    result = check_drift(auto_accepted_correct(active, audit), alpha=active.alpha)
    found = result.model_dump(include={"fired", "message", "n", "errors", "p_value"})
    check = DriftCheck(thresholds_version=active.version, **found)
    if not result.fired:
        return check
    now = datetime.now(UTC).isoformat()
    stale = sorted(set(active.calibration_sample_ids))
    alarm = DriftAlarm(created_at=now, thresholds_version=active.version, stale_sample_ids=stale, **result.model_dump())
    with store.atomic():
        write_drift_alarm(store, alarm)
        write_active_thresholds(store, tightened(active, result, now))
    return check.model_copy(update={"stale": len(stale)})


def stale_sample_ids(store: Store) -> set[str]:
    """Audits that described the stream before a drift alarm: never reused for fitting."""
    return {sid for alarm in list_drift_alarms(store) for sid in alarm.stale_sample_ids}


def fit_thresholds(audit: AuditSet, routing: RoutingSettings, stale: set[str], drift: DriftCheck) -> ThresholdFit:
    """Calibrate the labeler and pick guaranteed labeler and judge thresholds (pure: nothing is written)."""
    keep = [i for i, sid in enumerate(audit.sample_id) if sid not in stale]
    # Calibrate one labeler version at a time: the one with the most audits (normally the active one).
    versions = [audit.labeler_version[i] for i in keep]
    labeler_version = max(set(versions), key=versions.count) if versions else None
    keep = [i for i in keep if audit.labeler_version[i] == labeler_version]
    ids = [audit.sample_id[i] for i in keep]
    p_a = np.array([audit.p_a[i] for i in keep], dtype=float)
    prefers_a = np.array([audit.human_prefers_a[i] for i in keep], dtype=bool)
    correct = (p_a >= 0.5) == prefers_a
    conf = confidence_of(p_a)
    r = routing
    focus = focused_test(audit, routing, stale, labeler_version, ids, conf)
    if focus is not None:  # thinned to the design in force, so each stratum is a uniform sample
        kept = focus["kept"]
        ids, p_a, prefers_a, correct, conf = [ids[i] for i in kept], p_a[kept], prefers_a[kept], correct[kept], conf[kept]
        keep = [keep[i] for i in kept]
    labeler = guaranteed_threshold(
        conf, correct, r.alpha, r.delta, r.min_calibration_size, stage="labeler",
        stream_confidence=None if focus is None else focus["stream"], focus_above=r.audit_focus_above,
    )  # fmt: skip
    calibrator = fit_calibrator(p_a, prefers_a, r.calibration_method) if len(keep) else None

    jp = [audit.judge_p_a[i] for i in keep]
    has_judge = np.array([p is not None for p in jp], dtype=bool)
    if focus is not None:
        # The judge is tested on the focus stratum only: a uniform sample of it, and where the
        # labeler's certified thresholds are meant to lie (docs/routing-guarantee.md).
        has_judge &= conf >= r.audit_focus_above
    j_p = np.array([p if p is not None else 0.5 for p in jp], dtype=float)[has_judge]
    j_correct = ((j_p >= 0.5) == prefers_a[has_judge]) if has_judge.any() else np.array([], bool)
    j_consistent = np.array([audit.judge_consistent[i] for i in keep], dtype=bool)[has_judge]
    judge = guaranteed_threshold(
        confidence_of(j_p), j_correct, r.alpha, r.delta, r.min_calibration_size, stage="judge", eligible=j_consistent
    )

    refit = f"DRIFT alarm this run ({drift.message}); refit on the {len(keep)} audits since. " if drift.fired else ""
    fields = {
        "version": content_hash("thresholds", labeler_version, ids, r.alpha, r.delta, r.calibration_method),
        "created_at": datetime.now(UTC).isoformat(),
        "labeler_version": labeler_version,
        "labeler_threshold": labeler.threshold,
        "judge_threshold": judge.threshold,
        "alpha": r.alpha,
        "delta": r.delta,
        "drift": drift.fired,
        "n_audit": len(keep),
        "ece_raw": expected_calibration_error(conf, correct) if len(keep) else None,
        "ece_calibrated": expected_calibration_error(calibrator.calibrate_confidence(conf), correct)
        if calibrator
        else None,
        "labeler": labeler.summary(),
        "judge": judge.summary(),
        "status": f"{refit}{labeler.status}. {judge.status}.",
        "calibration_sample_ids": ids,
        "last_drift_check": drift.message,
    }
    if calibrator is not None:  # too few audits: no calibrator key at all (routing then uses identity)
        fields["calibrator"] = calibrator
    return ThresholdFit(Thresholds(**fields), confidence=conf.tolist(), correct=correct.tolist())


def focused_test(
    audit: AuditSet, routing: RoutingSettings, stale: set[str], labeler_version: str | None, ids: list[str],
    conf: np.ndarray,
) -> dict | None:
    """With focused audits in force: which audits the design in force would have drawn (the draws
    are nested, so an audit drawn at a higher rate is kept only if its hash is under today's
    probability), and the stream's confidences for that labeler. None for uniform audits."""
    design = routing.audit_design
    if not design.focused:
        return None
    if audit.sample_id and not audit.stream_sample_id:
        # Every audit is part of the stream: an empty stream means it was never loaded.
        raise ValueError("focused audits are in force but the audit set was loaded without the stream's "
                         "confidences: load it with load_audit_set(store, routing)")
    kept = [i for i, (sid, c) in enumerate(zip(ids, conf, strict=True)) if design.keeps(sid, float(c))]
    in_stream = [v == labeler_version and sid not in stale
                 for sid, v in zip(audit.stream_sample_id, audit.stream_labeler_version, strict=True)]  # fmt: skip
    stream_p_a = np.asarray(audit.stream_p_a, dtype=float)[np.asarray(in_stream, dtype=bool)]
    return {"kept": kept, "stream": confidence_of(stream_p_a)}


def fit_and_record_thresholds(
    store: Store, audit: AuditSet, routing: RoutingSettings, drift: DriftCheck
) -> ThresholdFit:
    """Fit on the audits that are not stale, then record the calibrator and make the new version active."""
    fit = fit_thresholds(audit, routing, stale_sample_ids(store), drift)
    th = fit.thresholds
    with store.atomic():
        if th.has_calibrator:
            cal = CalibrationRecord(labeler_version=th.labeler_version, **th.calibrator.model_dump())
            write_calibration(store, th.version, cal)
        write_thresholds(store, th)
    return fit
