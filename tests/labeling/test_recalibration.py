"""labeling/recalibration.py: the audit set, the drift check and the threshold fit, without Prefect."""

from __future__ import annotations

import numpy as np

from labeling import records
from labeling.merge import finalize_human_reviews
from labeling.recalibration import (
    AuditSet,
    DriftCheck,
    check_routing_drift,
    fit_and_record_thresholds,
    fit_thresholds,
    load_audit_set,
    stale_sample_ids,
)
from labeling.schemas import AILabel, HumanLabel, JudgeVerdict, Route, RouteReason, Sample
from labeling.settings import RoutingSettings
from labeling.store import Store

ROUTING = RoutingSettings(alpha=0.2, delta=0.1, min_calibration_size=50, calibration_method="temperature")
NO_DRIFT = DriftCheck(message="no drift")


def audits(n: int, error_rate: float, seed: int, start: int = 0, version: str = "v1") -> AuditSet:
    """n confident audits whose labeler is wrong with probability error_rate."""
    rng = np.random.default_rng(seed)
    p_a = rng.uniform(0.85, 0.99, n)
    wrong = rng.uniform(0, 1, n) < error_rate
    return AuditSet(
        sample_id=[f"s{start + i:05d}" for i in range(n)], p_a=p_a.tolist(), labeler_version=[version] * n,
        human_prefers_a=(~wrong).tolist(), judge_p_a=p_a.tolist(), judge_consistent=[True] * n,
    )  # fmt: skip


def joined(*sets: AuditSet) -> AuditSet:
    return AuditSet(**{f: [x for s in sets for x in getattr(s, f)] for f in AuditSet.model_fields})


def test_fit_picks_guaranteed_thresholds_on_the_majority_labeler_without_stale_audits() -> None:
    audit = joined(audits(300, 0.05, seed=0), audits(40, 0.5, seed=1, start=300, version="v0"))
    stale = {f"s{i:05d}" for i in range(100)}
    fit = fit_thresholds(audit, ROUTING, stale, NO_DRIFT)
    th = fit.thresholds
    assert th.labeler_version == "v1" and th.n_audit == 200 and len(fit.confidence) == 200
    assert not set(th.calibration_sample_ids) & stale
    assert th.labeler_threshold is not None and th.judge_threshold is not None
    assert th.has_calibrator and th.calibrator.method == "temperature" and th.ece_raw is not None
    assert fit_thresholds(audit, ROUTING, stale, NO_DRIFT).thresholds.version == th.version  # content-addressed
    assert not th.drift and th.last_drift_check == "no drift"


def test_fit_without_audits_stores_no_calibrator_and_accepts_nothing() -> None:
    fit = fit_thresholds(AuditSet(), ROUTING, set(), DriftCheck(fired=True, message="DRIFT: 9/10"))
    th = fit.thresholds
    assert th.labeler_threshold is None and th.judge_threshold is None and th.n_audit == 0
    assert not th.has_calibrator and th.ece_raw is None
    assert th.drift and th.status.startswith("DRIFT alarm this run (DRIFT: 9/10)")


def test_drift_check_records_the_alarm_and_tightens_routing(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    first = audits(300, 0.05, seed=0)
    assert not check_routing_drift(store, first).fired  # nothing calibrated yet: nothing to check
    fitted = fit_and_record_thresholds(store, first, ROUTING, NO_DRIFT).thresholds
    assert records.read_active_thresholds(store) == fitted
    assert records.read_calibration(store, "v1", fitted.version).temperature == fitted.calibrator.temperature

    assert not check_routing_drift(store, first).fired  # the calibration's own audits are not re-tested
    check = check_routing_drift(store, joined(first, audits(150, 0.5, seed=2, start=300)))
    assert check.fired and check.thresholds_version == fitted.version and check.stale == 300
    (alarm,) = records.list_drift_alarms(store)
    assert alarm.thresholds_version == fitted.version and len(alarm.stale_sample_ids) == 300
    active = records.read_active_thresholds(store)
    assert active.drift and active.labeler_threshold is None and active.judge_threshold is None
    assert "DRIFT ALARM" in active.status
    assert records.read_thresholds(store, fitted.version) == fitted  # the fitted version stays for the audit trail
    assert stale_sample_ids(store) == set(first.sample_id)
    store.close()


def test_audit_set_holds_only_audits_with_a_human_decision_and_an_ai_label(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    ids = ["a1", "a2", "n1", "a3"]
    store.add_samples([Sample(sample_id=s, prompt=f"q {s}", response_a="a", response_b="b") for s in ids], source="t")
    store.record_ai_labels([AILabel(sample_id=s, p_a=0.9, labeler_name="t", labeler_version="v1") for s in ids[:3]])
    audit_route = [RouteReason.mid_confidence, RouteReason.audit]
    store.record_routes(
        [Route(sample_id=s, to_judge=True, to_human=True, reasons=audit_route) for s in ("a1", "a2")]
        + [Route(sample_id="n1", to_judge=True, to_human=True, reasons=[RouteReason.mid_confidence])]
        + [Route(sample_id="a3", to_judge=False, to_human=True, reasons=[RouteReason.cold_start, RouteReason.audit])],
        stage="labeler",
    )
    store.record_verdicts([JudgeVerdict(sample_id="a1", p_a_original=0.2, p_a_swapped=0.3, model="m", version="j")])
    store.record_human_labels(
        [HumanLabel(sample_id=s, annotation_id=f"h-{s}", annotator="h", choice="B") for s in ("a1", "n1", "a3")]
    )
    finalize_human_reviews(store, ["a1", "n1", "a3"], max_annotators=1)
    audit = load_audit_set(store)
    # a2: no human decision yet; n1: not an audit (selected, would bias the fit); a3: cold start, no AI label.
    assert audit.sample_id == ["a1"] and audit.human_prefers_a == [False]
    assert audit.judge_p_a == [0.25] and audit.judge_consistent == [True]
    store.close()
