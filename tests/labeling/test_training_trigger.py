"""labeling.training_trigger: when merged labels are enough to train on, without Prefect."""

from __future__ import annotations

from labeling.export import Snapshot
from labeling.records import TrainingTrigger
from labeling.training_trigger import training_due


def _snap(n_rows: int) -> Snapshot:
    return Snapshot(snapshot_id=f"snap{n_rows}", path="/nowhere", n_rows=n_rows, counts_by_source={},
                    created_at="2026-12-01T00:00:00+00:00")


def test_first_snapshot_counts_all_rows() -> None:
    assert training_due(_snap(499), None, 500).emitted is False
    decision = training_due(_snap(500), None, 500)
    assert decision.emitted and decision.new_labels == 500 and decision.threshold == 500


def test_counts_only_rows_gained_since_the_last_trigger() -> None:
    last = TrainingTrigger(snapshot_id="snap600", n_rows=600)
    assert training_due(_snap(900), last, 500).model_dump() == {
        "snapshot_id": "snap900", "new_labels": 300, "threshold": 500, "emitted": False}
    assert training_due(_snap(1100), last, 500).emitted
    assert training_due(_snap(100), last, 1).new_labels == 0  # a smaller snapshot (labels removed) gains nothing
    assert training_due(_snap(100), last, 50, new_label_count=60).emitted  # the caller's own count wins
