"""State that outlives a run: one typed payload, one reader and one writer per kind of record.

The store keeps these as (kind, key) -> JSON payload rows. This module is the only caller of
the store's generic record functions, so every kind/key string lives here once. The strings and
payload keys are those earlier versions wrote, so databases that have lived for months still
read: a payload is validated on the way out, and a bad one is named (kind, key, field) with the fix.

| record              | kind                  | key                                 |
|---------------------|-----------------------|-------------------------------------|
| ActiveLabeler       | "labeler"             | "active"                            |
| Thresholds          | "thresholds"          | <thresholds version>, and "active"  |
| CalibrationRecord   | "calibration"         | "<labeler version>:<thresholds version>" |
| DriftAlarm          | "drift"               | <created_at, ISO time>              |
| TrainingTrigger     | "training"            | "last_trigger"                      |
| ReviewOverlap       | "labelstudio_overlap" | <sample id>                         |
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from labeling.calibration import ConfidenceCalibrator
from labeling.drift import DriftResult
from labeling.guarantee import ActiveThresholds

LABELER_KIND = "labeler"
THRESHOLDS_KIND = "thresholds"
CALIBRATION_KIND = "calibration"
DRIFT_KIND = "drift"
TRAINING_KIND = "training"
REVIEW_OVERLAP_KIND = "labelstudio_overlap"
ACTIVE_KEY = "active"
LAST_TRIGGER_KEY = "last_trigger"


class RecordStore(Protocol):
    """The part of labeling.store.Store this module uses."""

    def put_record(self, kind: str, key: str, payload: dict[str, Any]) -> None: ...
    def get_record(self, kind: str, key: str) -> dict[str, Any] | None: ...
    def list_records(self, kind: str) -> list[tuple[str, dict[str, Any]]]: ...
    def atomic(self) -> AbstractContextManager[Any]: ...


class ActiveLabeler(BaseModel):
    """The reward model the training gate promoted; build_labeler reads backend and model_path."""

    model_config = ConfigDict(extra="allow")  # keep keys a newer writer added when an older one rewrites

    backend: str = "reward_model"
    model_path: str
    version: str | None = None
    heldout_accuracy: float | None = None
    replaced: str | None = None  # the labeler version it replaced (None: the cold start)
    promoted_at: str | None = None


class Thresholds(ActiveThresholds):
    """A fitted thresholds version: what routing uses, plus how it was fitted (for status and audit)."""

    model_config = ConfigDict(extra="allow")

    created_at: str | None = None
    n_audit: int = 0
    ece_raw: float | None = None
    ece_calibrated: float | None = None
    labeler: dict[str, Any] | None = None  # labeling.guarantee summary of the labeler stage
    judge: dict[str, Any] | None = None
    calibration_sample_ids: list[str] = []
    last_drift_check: str | None = None

    @property
    def has_calibrator(self) -> bool:
        """Whether the fit stored a calibrator (too few audits store none; routing then uses identity)."""
        return "calibrator" in self.model_fields_set


class CalibrationRecord(ConfidenceCalibrator):
    """The calibrator of one labeler version, as fitted for one thresholds version."""

    labeler_version: str | None = None


class DriftAlarm(DriftResult):
    """A fired drift check, and the audits it made stale (never reused for fitting)."""

    created_at: str
    thresholds_version: str | None = None
    stale_sample_ids: list[str] = []


class TrainingTrigger(BaseModel):
    """The snapshot that last emitted juryflow.labels.ready."""

    snapshot_id: str
    n_rows: int
    emitted_at: str | None = None


class ReviewOverlap(BaseModel):
    """How many annotators a split-vote Label Studio task was raised to."""

    overlap: int
    task_id: int


Record = TypeVar("Record", bound=BaseModel)


def _parse(model: type[Record], kind: str, key: str, payload: dict[str, Any]) -> Record:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(payload)"
        raise ValueError(
            f"store record {kind}/{key}: field {field!r} {err['msg'].lower()} (got {err.get('input')!r}); "
            f"fix or delete that record"
        ) from None


def _dump(rec: BaseModel) -> dict[str, Any]:
    # exclude_unset: write exactly the keys the caller gave (or read), as earlier versions did.
    return rec.model_dump(mode="json", exclude_unset=True)


def _read(store: RecordStore, model: type[Record], kind: str, key: str) -> Record | None:
    payload = store.get_record(kind, key)
    return None if payload is None else _parse(model, kind, key, payload)


# -- active labeler -------------------------------------------------------------------------------


def read_active_labeler(store: RecordStore) -> ActiveLabeler | None:
    """The promoted reward model, or None when nothing has been promoted."""
    return _read(store, ActiveLabeler, LABELER_KIND, ACTIVE_KEY)


def write_active_labeler(store: RecordStore, rec: ActiveLabeler) -> None:
    store.put_record(LABELER_KIND, ACTIVE_KEY, _dump(rec))


# -- thresholds -----------------------------------------------------------------------------------


def read_active_thresholds(store: RecordStore) -> Thresholds | None:
    """The thresholds in force; None before the first calibration."""
    return _read(store, Thresholds, THRESHOLDS_KIND, ACTIVE_KEY)


def read_thresholds(store: RecordStore, version: str) -> Thresholds | None:
    return _read(store, Thresholds, THRESHOLDS_KIND, version)


def write_thresholds(store: RecordStore, rec: Thresholds) -> None:
    """Record a fitted version under its own key and make it the active one, in one transaction."""
    payload = _dump(rec)
    with store.atomic():
        store.put_record(THRESHOLDS_KIND, rec.version, payload)
        store.put_record(THRESHOLDS_KIND, ACTIVE_KEY, payload)


def write_active_thresholds(store: RecordStore, rec: Thresholds) -> None:
    """Replace only the active thresholds (drift tightening): the fitted version keeps its own record."""
    store.put_record(THRESHOLDS_KIND, ACTIVE_KEY, _dump(rec))


# -- calibration ----------------------------------------------------------------------------------


def _calibration_key(labeler_version: str | None, thresholds_version: str) -> str:
    return f"{labeler_version}:{thresholds_version}"


def read_calibration(
    store: RecordStore, labeler_version: str | None, thresholds_version: str
) -> CalibrationRecord | None:
    key = _calibration_key(labeler_version, thresholds_version)
    return _read(store, CalibrationRecord, CALIBRATION_KIND, key)


def write_calibration(store: RecordStore, thresholds_version: str, rec: CalibrationRecord) -> None:
    key = _calibration_key(rec.labeler_version, thresholds_version)
    # Every calibrator field, defaults included, as earlier versions wrote them.
    store.put_record(CALIBRATION_KIND, key, rec.model_dump(mode="json"))


# -- drift alarms ---------------------------------------------------------------------------------


def list_drift_alarms(store: RecordStore) -> list[DriftAlarm]:
    """Every recorded alarm, oldest first (keys are ISO times)."""
    return [_parse(DriftAlarm, DRIFT_KIND, key, p) for key, p in sorted(store.list_records(DRIFT_KIND))]


def write_drift_alarm(store: RecordStore, alarm: DriftAlarm) -> None:
    store.put_record(DRIFT_KIND, alarm.created_at, alarm.model_dump(mode="json"))


# -- training trigger -----------------------------------------------------------------------------


def read_training_trigger(store: RecordStore) -> TrainingTrigger | None:
    """The snapshot that last triggered training; None if none has."""
    return _read(store, TrainingTrigger, TRAINING_KIND, LAST_TRIGGER_KEY)


def write_training_trigger(store: RecordStore, rec: TrainingTrigger) -> None:
    store.put_record(TRAINING_KIND, LAST_TRIGGER_KEY, _dump(rec))


# -- Label Studio review overlap ------------------------------------------------------------------


def read_review_overlaps(store: RecordStore) -> dict[str, ReviewOverlap]:
    """Raised overlaps by sample id."""
    rows = store.list_records(REVIEW_OVERLAP_KIND)
    return {key: _parse(ReviewOverlap, REVIEW_OVERLAP_KIND, key, payload) for key, payload in rows}


def write_review_overlap(store: RecordStore, sample_id: str, rec: ReviewOverlap) -> None:
    store.put_record(REVIEW_OVERLAP_KIND, sample_id, rec.model_dump(mode="json"))
