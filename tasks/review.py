"""Human review in Label Studio, as Prefect tasks over batches.

Each task gets its resources, calls one function of labeling.labelstudio and publishes. Server errors
(5xx, connection refused, timeouts) are retried with backoff by the decorators; a refused request (4xx)
is not, since retrying cannot fix it (tasks.retries). When retries run out the error names the server
URL, never the token. Tasks load settings themselves (they hold the API token, which
must not land in Prefect's parameter records).
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import MissingContextError

from labeling.labelstudio import push
from labeling.labelstudio.agreement import agreement_report, agreement_table
from labeling.labelstudio.client import LabelStudioClient, project_title
from labeling.labelstudio.harvest import harvest_project
from labeling.labelstudio.reconcile import Difference, markdown_report, reconcile_project
from tasks import resources
from tasks.retries import retry_transient


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run logger inside a flow; a plain logger when a task's ``.fn`` is called directly (tests, benchmarks)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


RETRY: dict[str, Any] = {"retries": 4, "retry_delay_seconds": [2, 8, 30, 60], "retry_condition_fn": retry_transient}


@task(name="labelstudio-ensure-project", **RETRY)
def ensure_project() -> int:
    """The campaign's project id, created with our labeling config on first use."""
    cfg = resources.settings()
    return LabelStudioClient.from_settings(cfg).ensure_project(project_title(cfg), cfg.labelstudio.annotators_per_task,
                                                               cfg.labelstudio.show_ai_reference)


@task(name="labelstudio-push", **RETRY)
def push_pending(project_id: int, batch_size: int = 1000) -> dict[str, int]:
    """Every human_pending sample without a task becomes one; an outage leaves them human_pending."""
    cfg = resources.settings()
    result = push.push_pending(resources.store(cfg), LabelStudioClient.from_settings(cfg), project_id, batch_size,
                               cfg.labelstudio.show_ai_reference)
    if result.found:
        _logger().warning("%d samples already had tasks in project %d (an earlier push was not recorded); "
                          "recorded them without importing again", len(result.found), project_id)
    return {"created": len(result.created), "already_there": len(result.found)}


@task(name="labelstudio-harvest", **RETRY)
def harvest(project_id: int) -> dict[str, int]:
    """Annotations updated since the watermark become human labels, final labels and reopened split votes."""
    cfg = resources.settings()
    summary, quarantined = harvest_project(
        resources.store(cfg), LabelStudioClient.from_settings(cfg), project_id,
        annotators_per_task=cfg.labelstudio.annotators_per_task,
        max_annotators_on_tie=cfg.labelstudio.max_annotators_on_tie,
    )  # fmt: skip
    for record in quarantined[:20]:
        _logger().warning("quarantined annotation: %s", record.message)
    return summary.as_dict()


RECONCILE_SHOWN = 50  # differences listed in the artifact; the command line lists all


@task(name="labelstudio-reconcile", **RETRY)
def publish_reconcile(project_id: int) -> dict[str, Any]:
    """Label Studio against the store, as a markdown artifact (key `labelstudio-reconcile`); never fails on a difference."""
    cfg = resources.settings()
    shown: list[Difference] = []
    summary = reconcile_project(resources.store(cfg), LabelStudioClient.from_settings(cfg), project_id,
                                report=lambda d: shown.append(d) if len(shown) < RECONCILE_SHOWN else None)
    create_markdown_artifact(key="labelstudio-reconcile", markdown=markdown_report(summary, shown, RECONCILE_SHOWN),
                             description=summary.line())
    if summary.unexplained:
        _logger().warning(summary.line())
    return summary.as_dict()


@task(name="labelstudio-agreement")
def publish_agreement() -> dict[str, Any]:
    """Agreement figures as a Prefect table artifact (key `human-agreement`)."""
    report = agreement_report(resources.store())
    create_table_artifact(key="human-agreement", table=agreement_table(report),
                          description="Human vs AI labeler / judge agreement, inter-annotator alpha, audit disagreement")
    return report
