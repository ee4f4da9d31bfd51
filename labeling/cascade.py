"""The two stages of label_batch, as plain functions over a store: AI label and route; judge, route and merge.

Each stage acts only on samples still in the state it handles and writes in one transaction, so a
rerun after a crash skips finished samples and redoes at most the interrupted chunk. The labeler and
the judge are typed by the small protocols below (labeling/ never imports models/); the routing
policy is chosen per labeler version by ``policy_for`` (usually ``labeling.routing.policy_in_force``
bound to the settings and the active thresholds), because a calibration only describes the labeler
it was fitted on, and one chunk can hold labels of two versions (a promotion between runs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from labeling.constitution import Constitution
from labeling.injection import detect_injection
from labeling.merge import judge_final_label
from labeling.routing import RoutingPolicy, route_after_judge, route_after_labeler
from labeling.schemas import AILabel, JudgeVerdict, Route, Sample, SampleState

if TYPE_CHECKING:
    from labeling.export import Snapshot
    from labeling.store import Store


class Labeler(Protocol):
    """What the cascade needs of an AI labeler (models.base.AILabeler is one)."""

    @property
    def version(self) -> str: ...
    def label(self, samples: Sequence[Sample]) -> list[AILabel]: ...


class VerdictJudge(Protocol):
    """What the cascade needs of a judge (models.base.Judge is one)."""

    def judge(self, samples: Sequence[Sample], constitution: Constitution) -> list[JudgeVerdict]: ...


PolicyFor = Callable[[str | None], RoutingPolicy]  # labeler version (None: no labeler) -> policy in force


class LabelerStageCounts(BaseModel):
    """One chunk's outcome of the labeler stage."""

    labeled: int = 0
    to_judge: int = 0
    to_human: int = 0
    reasons: dict[str, int] = {}  # route reason -> samples with it
    confidence_sum: float = 0.0  # summed so that the run summary can average over chunks


class JudgeStageCounts(BaseModel):
    """One chunk's outcome of the judge stage."""

    judged: int = 0
    accepted: int = 0
    escalated: int = 0
    reasons: dict[str, int] = {}  # the deciding (last) route reason -> samples


def label_and_route(
    store: Store, sample_ids: Sequence[str], labeler: Labeler | None, policy_for: PolicyFor
) -> LabelerStageCounts:
    """Label the chunk's new samples and route each to the judge, humans, or both.

    ``labeler=None`` is the cold start: every sample goes to humans.
    """
    todo = store.get_samples(list(sample_ids), state=SampleState.new)
    labels = {lab.sample_id: lab for lab in labeler.label(todo)} if (labeler and todo) else {}
    policy = policy_for(labeler.version if labeler else None)
    routes = [route_after_labeler(s.sample_id, labels.get(s.sample_id), policy) for s in todo]
    with store.atomic():
        store.record_ai_labels(list(labels.values()))
        store.record_routes(routes, stage="labeler")
    return LabelerStageCounts(
        labeled=len(labels),
        to_judge=sum(r.to_judge for r in routes),
        to_human=sum(r.to_human for r in routes),
        reasons=dict(Counter(reason.value for route in routes for reason in route.reasons)),
        confidence_sum=sum(lab.confidence for lab in labels.values()),
    )


def judge_and_route(
    store: Store,
    sample_ids: Sequence[str],
    judge: VerdictJudge,
    constitution: Constitution,
    policy_for: PolicyFor,
    critic: Callable[[], VerdictJudge] | None = None,
) -> JudgeStageCounts:
    """Judge the chunk's judge-pending samples in both A/B orders, then accept the judge's label
    or escalate to a human; accepted labels become final labels.

    ``critic`` (built only when a sample escalates) writes per-principle critiques for the
    human reviewers; routing never sees them.
    """
    todo = store.get_samples(list(sample_ids), state=SampleState.judge_pending)
    if not todo:
        return JudgeStageCounts()
    ids = [s.sample_id for s in todo]
    labels, first_routes = store.get_ai_labels(ids), store.get_routes(ids)
    verdicts = judge.judge(todo, constitution)
    policies = {version: policy_for(version) for version in sorted({labels[i].labeler_version for i in ids})}
    routes, finals = [], []
    for sample, verdict in zip(todo, verdicts, strict=True):
        label = labels[sample.sample_id]
        first = first_routes[sample.sample_id]["labeler"]
        route = route_after_judge(first, label, verdict, policies[label.labeler_version], detect_injection(sample))
        routes.append(route)
        if route.accept_judge:
            finals.append(judge_final_label(label, verdict))
    if critic is not None:
        verdicts = with_reviewer_critiques(critic, constitution, todo, verdicts, routes)
    with store.atomic():
        store.record_verdicts(verdicts)
        store.record_routes(routes, stage="judge")
        store.record_final_labels(finals)
    return JudgeStageCounts(
        judged=len(verdicts),
        accepted=len(finals),
        escalated=len(routes) - len(finals),
        reasons=dict(Counter(route.reasons[-1].value for route in routes)),
    )


def with_reviewer_critiques(
    critic: Callable[[], VerdictJudge],
    constitution: Constitution,
    samples: Sequence[Sample],
    verdicts: list[JudgeVerdict],
    routes: Sequence[Route],
) -> list[JudgeVerdict]:
    """Attach per-principle critiques to the verdicts of samples going to humans.

    Routing has already decided on the verdict-mode scores; the critique is only text for
    the reviewer, so it is attached to the deciding verdict rather than stored as a second
    verdict that could be mistaken for it. An unreadable critique is said to be so.
    """
    escalated = [i for i, route in enumerate(routes) if route.to_human]
    if not escalated:
        return verdicts
    critiqued = critic().judge([samples[i] for i in escalated], constitution)
    out = list(verdicts)
    for i, crit in zip(escalated, critiqued, strict=True):
        text = crit.critique if crit.parse_error is None else f"(no usable critique: {crit.parse_error})"
        out[i] = out[i].model_copy(update={"critique": text})
    return out


def run_summary(
    ingested: dict | None,
    labeled: Sequence[LabelerStageCounts],
    judged: Sequence[JudgeStageCounts],
    snapshot: Snapshot,
    human_pending: int,
) -> dict:
    """One label_batch run in figures: the chunks' stage counts added up, and the snapshot it exported."""
    reasons: Counter[str] = Counter()
    for part in labeled:
        reasons.update(part.reasons)
    judge_outcomes: Counter[str] = Counter()
    for part in judged:
        judge_outcomes.update(part.reasons)
    n_labeled = sum(p.labeled for p in labeled)
    return {
        "ingested": ingested or {},
        "ai_labeled": n_labeled,
        "to_judge": sum(p.to_judge for p in labeled),
        "to_human": sum(p.to_human for p in labeled),
        "judge_accepted": sum(p.accepted for p in judged),
        "judge_escalated": sum(p.escalated for p in judged),
        "mean_confidence": round(sum(p.confidence_sum for p in labeled) / n_labeled, 4) if n_labeled else None,
        "route_reasons": dict(reasons),
        "judge_outcomes": dict(judge_outcomes),
        "human_pending": human_pending,
        "snapshot_id": snapshot.snapshot_id,
        "snapshot_path": str(snapshot.path),
        "snapshot_rows": snapshot.n_rows,
    }
