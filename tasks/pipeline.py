"""The label_batch steps, as Prefect tasks over chunks of samples (id ranges of a state).

Each task is idempotent by construction: it only acts on samples still in the state it
handles, and writes with upserts inside one transaction. A rerun after a crash therefore
skips finished samples and redoes at most the one interrupted chunk. We deliberately do
not use Prefect result caching for these store-writing tasks: a cache hit would skip the
writes even when the store no longer has them (a new or restored database), while the
store's own states are the truth for every worker and process.
"""

from __future__ import annotations

from itertools import count

from prefect import get_run_logger, task

from labeling.cascade import JudgeStageCounts, LabelerStageCounts, judge_and_route, label_and_route
from labeling.ingest import ingest_file
from labeling.schemas import SampleState
from labeling.store import IdRange, paging
from tasks import resources
from tasks.retries import retry_transient

# Transient failures (a locked SQLite file, a restarting PostgreSQL or model server) are
# retried with backoff; validation problems never raise, they are quarantined.
RETRY = {"retries": 3, "retry_delay_seconds": [2, 8, 30], "retry_condition_fn": retry_transient}


@task(name="ingest-input", **RETRY)
def ingest_input(input_path: str) -> dict:
    """Load, validate and store a file; rejected rows go to quarantine, the rest carry on."""
    cfg = resources.settings()
    seen = count()

    def log_first(record) -> None:  # the first 20 are enough to see what is wrong with a file
        if next(seen) < 20:
            get_run_logger().warning("quarantined: %s", record.message)

    return ingest_file(resources.store(cfg), input_path, cfg.ingest, on_quarantine=log_first)


@task(name="list-id-ranges")
def list_id_ranges(state: SampleState, chunk_size: int) -> list[IdRange]:
    """The state's samples as chunks named by their first and last id: 50 small values for 100k samples,
    where a list of every id would sit in the flow's memory as this task's result and each chunk's parameters."""
    return paging.id_ranges(resources.store(), state, chunk_size)


@task(name="ai-label-and-route", **RETRY)
def ai_label_and_route(chunk: IdRange) -> LabelerStageCounts:
    cfg = resources.settings()
    st = resources.store(cfg)
    return label_and_route(st, paging.ids_in_range(st, chunk), resources.labeler(cfg), resources.policy_for(cfg, st))


@task(name="judge-and-merge", **RETRY)
def judge_and_merge(chunk: IdRange, critique: bool | None = None) -> JudgeStageCounts:
    """Judge both A/B orders, then accept the judge's label or escalate to a human."""
    cfg = resources.settings()
    st = resources.store(cfg)
    sample_ids = paging.ids_in_range(st, chunk)
    # Critiques for the reviewers only when verdicts carry none already (judge.critique, or critique=True).
    wants_critiques = cfg.judge.critique_escalated and not cfg.judge.critique and critique is not True
    critic = (lambda: resources.judge(cfg, critique=True)) if wants_critiques else None
    judge, constitution = resources.judge(cfg, critique), resources.constitution(cfg)
    return judge_and_route(st, sample_ids, judge, constitution, resources.policy_for(cfg, st), critic)
