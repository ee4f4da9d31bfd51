"""When merged labels are enough to train on: the decision behind ``juryflow.labels.ready``.

Prefect deployment triggers match event names and resource labels, not payload values, so the
threshold is applied here, before emitting, against the snapshot that last triggered training.
"""

from __future__ import annotations

from pydantic import BaseModel

from labeling.export import Snapshot
from labeling.records import TrainingTrigger


class TriggerDecision(BaseModel):
    snapshot_id: str
    new_labels: int  # rows gained since the snapshot that last triggered training
    threshold: int  # training.trigger_min_new_labels
    emitted: bool  # whether training is due (the task emits the event exactly then)


def new_labels_since_last_trigger(snapshot: Snapshot, last_trigger: TrainingTrigger | None) -> int:
    """Rows gained since the snapshot that last triggered training (all rows if none did)."""
    if last_trigger is None:
        return snapshot.n_rows
    return max(0, snapshot.n_rows - last_trigger.n_rows)


def training_due(
    snapshot: Snapshot, last_trigger: TrainingTrigger | None, min_new_labels: int, new_label_count: int | None = None
) -> TriggerDecision:
    """Due when at least ``min_new_labels`` rows arrived since the last trigger (or ``new_label_count`` says so)."""
    new = new_labels_since_last_trigger(snapshot, last_trigger) if new_label_count is None else new_label_count
    return TriggerDecision(snapshot_id=snapshot.snapshot_id, new_labels=new, threshold=min_new_labels,
                           emitted=new >= min_new_labels)
