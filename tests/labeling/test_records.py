"""labeling/records.py reads what earlier versions wrote, and writes the same keys back."""

from __future__ import annotations

import pytest

from labeling import records
from labeling.drift import check_drift
from labeling.records import (
    ActiveLabeler,
    CalibrationRecord,
    DriftAlarm,
    ReviewOverlap,
    Thresholds,
    TrainingTrigger,
)
from labeling.store import Store

# Payloads exactly as the code before labeling/records.py wrote them (put_record call sites).
OLD_LABELER = {"backend": "reward_model", "model_path": "/m/rm-1", "version": "rm-1", "heldout_accuracy": 0.71,
               "replaced": None, "promoted_at": "2026-11-01T10:00:00+00:00"}
OLD_THRESHOLDS = {
    "version": "th-1", "created_at": "2026-11-02T10:00:00+00:00", "labeler_version": "rm-1",
    "labeler_threshold": 0.83, "judge_threshold": None,
    "calibrator": {"method": "temperature", "temperature": 1.4, "knots_x": [], "knots_y": [], "n": 300},
    "alpha": 0.1, "delta": 0.1, "drift": False, "n_audit": 300, "ece_raw": 0.08, "ece_calibrated": 0.02,
    "labeler": {"threshold": 0.83, "n_calibration": 300}, "judge": {"threshold": None, "n_calibration": 0},
    "status": "labeler: auto-accept confidence >= 0.83. judge: nothing qualifies.",
    "calibration_sample_ids": ["s1", "s2"], "last_drift_check": "no drift",
}  # fmt: skip
OLD_TRIGGER = {"snapshot_id": "snap-7", "n_rows": 120, "emitted_at": "2026-11-03T10:00:00+00:00"}


@pytest.fixture
def store(tmp_path) -> Store:
    st = Store(f"sqlite:///{tmp_path / 'records.db'}")
    yield st
    st.close()


def test_empty_store_reads_none(store: Store) -> None:
    assert records.read_active_labeler(store) is None
    assert records.read_active_thresholds(store) is None
    assert records.read_training_trigger(store) is None
    assert records.list_drift_alarms(store) == []
    assert records.read_review_overlaps(store) == {}


def test_reads_records_written_by_earlier_code(store: Store) -> None:
    store.put_record("labeler", "active", OLD_LABELER)
    store.put_record("thresholds", "th-1", OLD_THRESHOLDS)
    store.put_record("thresholds", "active", OLD_THRESHOLDS)
    store.put_record("calibration", "rm-1:th-1", {"labeler_version": "rm-1", **OLD_THRESHOLDS["calibrator"]})
    store.put_record("drift", "2026-11-04T10:00:00+00:00", {
        "created_at": "2026-11-04T10:00:00+00:00", "thresholds_version": "th-1", "n": 150, "errors": 60,
        "alpha": 0.1, "level": 0.01, "p_value": 1e-9, "fired": True, "message": "DRIFT: 60/150",
        "stale_sample_ids": ["s1", "s2"]})  # fmt: skip
    store.put_record("training", "last_trigger", OLD_TRIGGER)
    store.put_record("labelstudio_overlap", "s9", {"overlap": 3, "task_id": 42})

    labeler = records.read_active_labeler(store)
    assert labeler is not None and labeler.model_path == "/m/rm-1" and labeler.version == "rm-1"
    active = records.read_active_thresholds(store)
    assert active is not None and active.version == "th-1" and active.labeler_threshold == 0.83
    assert active.calibrator.method == "temperature" and active.has_calibrator and active.n_audit == 300
    assert records.read_thresholds(store, "th-1") == active
    cal = records.read_calibration(store, "rm-1", "th-1")
    assert cal is not None and cal.temperature == 1.4 and cal.labeler_version == "rm-1"
    (alarm,) = records.list_drift_alarms(store)
    assert alarm.fired and alarm.thresholds_version == "th-1" and alarm.stale_sample_ids == ["s1", "s2"]
    trigger = records.read_training_trigger(store)
    assert trigger is not None and trigger.n_rows == 120
    assert records.read_review_overlaps(store) == {"s9": ReviewOverlap(overlap=3, task_id=42)}


def test_writers_write_the_keys_earlier_code_wrote(store: Store) -> None:
    records.write_active_labeler(store, ActiveLabeler.model_validate(OLD_LABELER))
    assert store.get_record("labeler", "active") == OLD_LABELER
    records.write_thresholds(store, Thresholds.model_validate(OLD_THRESHOLDS))
    assert store.get_record("thresholds", "th-1") == OLD_THRESHOLDS == store.get_record("thresholds", "active")
    records.write_training_trigger(store, TrainingTrigger.model_validate(OLD_TRIGGER))
    assert store.get_record("training", "last_trigger") == OLD_TRIGGER
    records.write_review_overlap(store, "s9", ReviewOverlap(overlap=3, task_id=42))
    assert store.list_records("labelstudio_overlap") == [("s9", {"overlap": 3, "task_id": 42})]
    cal = CalibrationRecord(labeler_version="rm-1", method="temperature", temperature=1.4, n=300)
    records.write_calibration(store, "th-1", cal)
    assert store.get_record("calibration", "rm-1:th-1") == {"labeler_version": "rm-1", **OLD_THRESHOLDS["calibrator"]}


def test_thresholds_without_calibrator_stay_without(store: Store) -> None:
    no_cal = {k: v for k, v in OLD_THRESHOLDS.items() if k != "calibrator"}
    records.write_thresholds(store, Thresholds.model_validate(no_cal))
    active = records.read_active_thresholds(store)
    assert active is not None and not active.has_calibrator and active.calibrator.method == "identity"
    assert "calibrator" not in store.get_record("thresholds", "active")


def test_active_thresholds_replaced_alone_keep_the_fitted_version(store: Store) -> None:
    fitted = Thresholds.model_validate(OLD_THRESHOLDS)
    records.write_thresholds(store, fitted)
    records.write_active_thresholds(store, fitted.model_copy(update={"labeler_threshold": None, "drift": True}))
    assert records.read_active_thresholds(store).labeler_threshold is None
    assert records.read_thresholds(store, "th-1").labeler_threshold == 0.83
    assert store.get_record("thresholds", "active")["calibration_sample_ids"] == ["s1", "s2"]


def test_drift_alarms_list_oldest_first(store: Store) -> None:
    result = check_drift([False] * 40 + [True] * 60, alpha=0.1)
    for t in ("2026-11-05T00:00:00+00:00", "2026-11-04T00:00:00+00:00"):
        records.write_drift_alarm(store, DriftAlarm(created_at=t, thresholds_version="th-1", **result.model_dump()))
    assert [a.created_at for a in records.list_drift_alarms(store)] == sorted(
        ["2026-11-05T00:00:00+00:00", "2026-11-04T00:00:00+00:00"]
    )


def test_a_bad_payload_names_the_record_and_field(store: Store) -> None:
    store.put_record("labelstudio_overlap", "s3", {"overlap": "many", "task_id": 1})
    with pytest.raises(ValueError, match=r"labelstudio_overlap/s3: field 'overlap'.*fix or delete"):
        records.read_review_overlaps(store)
    store.put_record("labeler", "active", {"backend": "reward_model"})
    with pytest.raises(ValueError, match=r"labeler/active: field 'model_path'"):
        records.read_active_labeler(store)
