"""Prefect events that chain the DAG: labels ready -> train a reward model -> fine-tune a policy.

Deployment triggers in prefect.yaml match on the event name and resource labels only (they
cannot filter on payload values), so these tasks emit only when the downstream work is due.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.events import emit_event

from labeling.export import Snapshot
from labeling.records import TrainingTrigger, read_training_trigger, write_training_trigger
from labeling.training_trigger import training_due
from tasks import resources

LABELS_READY = "juryflow.labels.ready"
REWARD_MODEL_PROMOTED = "juryflow.reward_model.promoted"


@task(name="emit-labels-ready", retries=2, retry_delay_seconds=[2, 10])
def emit_labels_ready(snapshot: Snapshot, new_label_count: int | None = None) -> dict:
    """Emit ``juryflow.labels.ready`` when enough new labels arrived; the train-reward-model deployment listens."""
    cfg = resources.settings()
    store = resources.store(cfg)
    decision = training_due(snapshot, read_training_trigger(store), cfg.training.trigger_min_new_labels, new_label_count)
    outcome, new = decision.model_dump(), decision.new_labels
    if not decision.emitted:
        get_run_logger().info("not triggering training: %d new labels < %d", new, decision.threshold)
        return outcome
    emit_event(
        event=LABELS_READY,
        resource={"prefect.resource.id": f"juryflow.snapshot.{snapshot.snapshot_id}", "juryflow.campaign": cfg.campaign},
        payload={"snapshot_id": snapshot.snapshot_id, "n_rows": snapshot.n_rows, "new_labels": new,
                 "counts_by_source": snapshot.counts_by_source},
    )
    write_training_trigger(store, TrainingTrigger(snapshot_id=snapshot.snapshot_id, n_rows=snapshot.n_rows,
                                                  emitted_at=datetime.now(UTC).isoformat()))
    get_run_logger().info("emitted %s for snapshot %s (%d new labels)", LABELS_READY, snapshot.snapshot_id, new)
    return outcome


@task(name="emit-reward-model-promoted", retries=2, retry_delay_seconds=[2, 10])
def emit_reward_model_promoted(version: str, snapshot_id: str | None, accuracy: float) -> None:
    """Emit ``juryflow.reward_model.promoted``; the finetune-policy deployment listens."""
    cfg = resources.settings()
    emit_event(
        event=REWARD_MODEL_PROMOTED,
        resource={"prefect.resource.id": f"juryflow.reward_model.{version}", "juryflow.campaign": cfg.campaign},
        payload={"version": version, "snapshot_id": snapshot_id, "heldout_accuracy": accuracy},
    )
