"""Human review in Label Studio, as Prefect tasks over batches.

Server errors (5xx, connection refused, timeouts) are retried with backoff by the decorators; a
refused request (4xx) is not, since retrying cannot fix it. When retries run out the error names
the server URL, never the token. Tasks load settings themselves (they hold the API token, which
must not land in Prefect's parameter records).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.exceptions import MissingContextError

from labeling.labelstudio.agreement import agreement_report, agreement_table
from labeling.labelstudio.client import LabelStudioClient, LabelStudioUnavailable, project_title
from labeling.labelstudio.harvest import OVERLAP_RECORD, fetch_updated_tasks, parse_tasks, watermark_name
from labeling.labelstudio.push import push_samples
from labeling.merge import resolve_human_reviews
from tasks import resources


def _retry_if_unavailable(task, task_run, state) -> bool:
    """Retry server trouble only; a 4xx or a bug fails at once."""
    try:
        state.result()
    except LabelStudioUnavailable:
        return True
    except Exception:  # noqa: BLE001 - any other failure is not transient: do not retry it
        return False
    return False


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow; a plain logger when a task's ``.fn`` is called directly (tests, benchmarks)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


RETRY: dict[str, Any] = {"retries": 4, "retry_delay_seconds": [2, 8, 30, 60], "retry_condition_fn": _retry_if_unavailable}


@task(name="labelstudio-ensure-project", **RETRY)
def ensure_project() -> int:
    """The campaign's project id, created with our labeling config on first use."""
    cfg = resources.settings()
    return LabelStudioClient.from_settings(cfg).ensure_project(project_title(cfg), cfg.labelstudio.annotators_per_task)


@task(name="labelstudio-push", **RETRY)
def push_pending(project_id: int, batch_size: int = 1000) -> dict[str, int]:
    """Every human_pending sample without a task becomes one; an outage leaves them human_pending."""
    cfg = resources.settings()
    st = resources.store(cfg)
    client = LabelStudioClient.from_settings(cfg)
    created = found = 0
    while ids := st.unpushed_human_pending(limit=batch_size):
        result = push_samples(st, client, project_id, ids)
        created, found = created + len(result.created), found + len(result.found)
    if found:
        _logger().warning("%d samples already had tasks in project %d (an earlier push was not recorded); "
                                 "recorded them without importing again", found, project_id)
    return {"created": created, "already_there": found}


@task(name="labelstudio-harvest", **RETRY)
def harvest(project_id: int) -> dict[str, int]:
    """Read annotations updated since the watermark, validate, resolve and store them in one transaction.

    The watermark moves only after the batch is written, so a crash re-reads (idempotently) rather than loses.
    """
    cfg = resources.settings()
    st = resources.store(cfg)
    client = LabelStudioClient.from_settings(cfg)
    mark = watermark_name(project_id)
    tasks = fetch_updated_tasks(client, project_id, st.get_watermark(mark))
    pushed = st.get_human_tasks()
    sample_by_task = {t.task_id: s for s, t in pushed.items() if t.project_id == project_id}
    batch = parse_tasks(project_id, tasks, sample_by_task)
    for record in batch.quarantine[:20]:
        _logger().warning("quarantined annotation: %s", record.message)
    with st.atomic():
        st.record_human_labels(batch.labels)
        st.add_quarantine(batch.quarantine)
    ids = sorted(batch.sample_ids)
    raised = dict(st.list_records(OVERLAP_RECORD))
    outcomes = resolve_human_reviews(
        st, ids, cfg.labelstudio.max_annotators_on_tie,
        wanted=lambda sid: max(cfg.labelstudio.annotators_per_task, raised.get(sid, {}).get("overlap", 0)),
    )  # fmt: skip
    reopen = {r.sample_id: r.n_annotators + 1 for r in outcomes if r.outcome == "needs_more"}
    finals = [r.final for r in outcomes if r.final is not None]
    # Ask Label Studio for one more annotator on each split vote before recording that we asked.
    for sample_id, overlap in reopen.items():
        task_id = pushed[sample_id].task_id
        # Patching overlap alone leaves is_labeled set, and Label Studio's queue skips labeled tasks.
        client.call(f"raising the overlap of task {task_id} to {overlap}", client.sdk.tasks.update, str(task_id),
                    overlap=overlap, is_labeled=False)
    with st.atomic():
        for sample_id, overlap in reopen.items():
            st.put_record(OVERLAP_RECORD, sample_id, {"overlap": overlap, "task_id": pushed[sample_id].task_id})
        st.record_final_labels(finals)
        if batch.newest:
            st.set_watermark(mark, batch.newest)
    counts = Counter(r.outcome for r in outcomes)
    return {"tasks_read": batch.n_tasks, "human_labels": len(batch.labels), "quarantined": len(batch.quarantine),
            "final_labels": len(finals), "reopened_for_tie": len(reopen), "ties": counts["tie"],
            "waiting": counts["waiting"]}


@task(name="labelstudio-agreement")
def publish_agreement() -> dict[str, Any]:
    """Agreement figures as a Prefect table artifact (key `human-agreement`)."""
    report = agreement_report(resources.store())
    create_table_artifact(key="human-agreement", table=agreement_table(report),
                          description="Human vs AI labeler / judge agreement, inter-annotator alpha, audit disagreement")
    return report
