"""The label_batch steps, as Prefect tasks over chunks of sample ids.

Each task is idempotent by construction: it only acts on samples still in the state it
handles, and writes with upserts inside one transaction. A rerun after a crash therefore
skips finished samples and redoes at most the one interrupted chunk. We deliberately do
not use Prefect result caching for these store-writing tasks: a cache hit would skip the
writes even when the store no longer has them (a new or restored database), while the
store's own states are the truth for every worker and process.
"""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

from prefect import get_run_logger, task

from labeling.ingest import load_records, parse_records
from labeling.merge import judge_final_label
from labeling.routing import route_after_judge, route_after_labeler
from labeling.schemas import SampleState
from labeling.injection import detect_injection
from tasks import resources
from tasks.retries import retry_transient

# Transient failures (a locked SQLite file, a restarting PostgreSQL or model server) are
# retried with backoff; validation problems never raise, they are quarantined.
RETRY = {"retries": 3, "retry_delay_seconds": [2, 8, 30], "retry_condition_fn": retry_transient}


@task(name="ingest-input", **RETRY)
def ingest_input(input_path: str) -> dict:
    """Load, validate and store a file; rejected rows go to quarantine, the rest carry on."""
    cfg = resources.settings()
    st = resources.store(cfg)
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"input_path {input_path!r} does not exist: pass a JSONL, Parquet or datasets directory")
    totals = Counter()
    records = load_records(path)
    # Chunks bound memory on large files; the store resolves ids across chunks.
    while chunk := list(islice(records, cfg.ingest.batch_size)):
        samples, rejected = parse_records(chunk, cfg.ingest)
        result = st.add_samples(samples, source=str(path))
        problems = [*rejected, *result.conflicts]
        st.add_quarantine(problems)
        for record in problems[:20]:
            get_run_logger().warning("quarantined: %s", record.message)
        totals.update(
            read=len(chunk), inserted=len(result.inserted), unchanged=len(result.unchanged), quarantined=len(problems)
        )
    return dict(totals)


@task(name="list-samples")
def list_sample_ids(state: SampleState, chunk_size: int) -> list[list[str]]:
    ids = resources.store().ids_in_state(state)
    return [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]


@task(name="ai-label-and-route", **RETRY)
def ai_label_and_route(sample_ids: list[str]) -> dict:
    cfg = resources.settings()
    st = resources.store(cfg)
    todo = st.get_samples(sample_ids, state=SampleState.new)
    labeler = resources.labeler(cfg)
    labels = {lab.sample_id: lab for lab in labeler.label(todo)} if (labeler and todo) else {}
    policy = resources.routing_policy(cfg, st, labeler.version if labeler else None)
    routes = [route_after_labeler(s.sample_id, labels.get(s.sample_id), policy) for s in todo]
    with st.atomic():
        st.record_ai_labels(list(labels.values()))
        st.record_routes(routes, stage="labeler")
    reasons = Counter(r.value for route in routes for r in route.reasons)
    return {
        "labeled": len(labels),
        "to_judge": sum(r.to_judge for r in routes),
        "to_human": sum(r.to_human for r in routes),
        "reasons": dict(reasons),
        "confidence_sum": sum(lab.confidence for lab in labels.values()),
    }


@task(name="judge-and-merge", **RETRY)
def judge_and_merge(sample_ids: list[str], critique: bool | None = None) -> dict:
    """Judge both A/B orders, then accept the judge's label or escalate to a human."""
    cfg = resources.settings()
    st = resources.store(cfg)
    todo = st.get_samples(sample_ids, state=SampleState.judge_pending)
    if not todo:
        return {"judged": 0, "accepted": 0, "escalated": 0, "reasons": {}}
    ids = [s.sample_id for s in todo]
    labels, first_routes = st.get_ai_labels(ids), st.get_routes(ids)
    constitution = resources.constitution(cfg)
    verdicts = resources.judge(cfg, critique).judge(todo, constitution)
    policy = resources.routing_policy(cfg, st, labels[ids[0]].labeler_version)
    routes, finals = [], []
    for sample, verdict in zip(todo, verdicts, strict=True):
        label = labels[sample.sample_id]
        route = route_after_judge(
            first_routes[sample.sample_id]["labeler"], label, verdict, policy, detect_injection(sample)
        )
        routes.append(route)
        if route.accept_judge:
            finals.append(judge_final_label(label, verdict))
    if cfg.judge.critique_escalated and not cfg.judge.critique and critique is not True:
        verdicts = _with_reviewer_critiques(cfg, constitution, todo, verdicts, routes)
    with st.atomic():
        st.record_verdicts(verdicts)
        st.record_routes(routes, stage="judge")
        st.record_final_labels(finals)
    return {
        "judged": len(verdicts),
        "accepted": len(finals),
        "escalated": len(routes) - len(finals),
        "reasons": dict(Counter(routes[i].reasons[-1].value for i in range(len(routes)))),
    }


def _with_reviewer_critiques(cfg, constitution, samples, verdicts, routes) -> list:
    """Attach per-principle critiques to the verdicts of samples going to humans.

    Routing has already decided on the verdict-mode scores; the critique is only text for
    the reviewer, so it is attached to the deciding verdict rather than stored as a second
    verdict that could be mistaken for it. An unreadable critique is said to be so.
    """
    escalated = [i for i, route in enumerate(routes) if route.to_human]
    if not escalated:
        return verdicts
    critiqued = resources.judge(cfg, critique=True).judge([samples[i] for i in escalated], constitution)
    out = list(verdicts)
    for i, crit in zip(escalated, critiqued, strict=True):
        text = crit.critique if crit.parse_error is None else f"(no usable critique: {crit.parse_error})"
        out[i] = out[i].model_copy(update={"critique": text})
    return out
