"""labeling/cascade.py: the two label_batch stages over a real store, without Prefect."""

from __future__ import annotations

from collections.abc import Sequence

from labeling.cascade import JudgeStageCounts, LabelerStageCounts, judge_and_route, label_and_route
from labeling.constitution import Constitution
from labeling.routing import RoutingPolicy
from labeling.schemas import AILabel, JudgeVerdict, RouteReason, Sample, SampleState
from labeling.store import Store
from tests.labeling.conftest import make_samples

POLICY = RoutingPolicy(high=0.8, low=0.6, audit_rate=0.0)


class TableLabeler:
    """Says p_a from a table, so each test picks every route; labels carry its version."""

    def __init__(self, p_a: dict[str, float], version: str = "v1") -> None:
        self.p_a, self.version, self.calls = p_a, version, 0

    def label(self, samples: Sequence[Sample]) -> list[AILabel]:
        self.calls += 1
        return [
            AILabel(sample_id=s.sample_id, p_a=self.p_a[s.sample_id], labeler_name="table", labeler_version=self.version)
            for s in samples
        ]


class TableJudge:
    """Prefers A with the given p_a in both orders (swap-consistent), or as told per sample."""

    def __init__(self, p_a: dict[str, float], critique: str | None = None) -> None:
        self.p_a, self.critique, self.judged = p_a, critique, []

    def judge(self, samples: Sequence[Sample], constitution: Constitution) -> list[JudgeVerdict]:
        self.judged.append([s.sample_id for s in samples])
        return [
            JudgeVerdict(sample_id=s.sample_id, p_a_original=self.p_a[s.sample_id], p_a_swapped=self.p_a[s.sample_id],
                         model="table", version="j1", critique=self.critique)
            for s in samples
        ]  # fmt: skip


def _fixed(policy: RoutingPolicy):
    return lambda version: policy


def test_labeler_stage_routes_counts_and_is_idempotent(store: Store) -> None:
    samples = make_samples(3)
    store.add_samples(samples, source="t")
    ids = [s.sample_id for s in samples]
    labeler = TableLabeler({ids[0]: 0.95, ids[1]: 0.7, ids[2]: 0.55})
    counts = label_and_route(store, ids, labeler, _fixed(POLICY))
    assert counts == LabelerStageCounts(
        labeled=3, to_judge=2, to_human=2, confidence_sum=0.95 + 0.7 + 0.55,
        reasons={"high_confidence": 1, "mid_confidence": 1, "low_confidence": 1},
    )  # fmt: skip
    assert store.ids_in_state(SampleState.judge_pending) == ids[:2]
    assert store.ids_in_state(SampleState.human_pending) == ids[2:]
    again = label_and_route(store, ids, labeler, _fixed(POLICY))  # a rerun after a crash: nothing left to do
    assert again == LabelerStageCounts() and labeler.calls == 1


def test_labeler_stage_cold_start_sends_all_to_humans(store: Store) -> None:
    samples = make_samples(2)
    store.add_samples(samples, source="t")
    asked: list[str | None] = []
    counts = label_and_route(store, [s.sample_id for s in samples], None, lambda v: asked.append(v) or POLICY)
    assert counts.labeled == 0 and counts.to_human == 2 and counts.reasons == {"cold_start": 2}
    assert asked == [None]


def _labeled_pair(store: Store) -> list[str]:
    """Two confident samples in judge_pending, labeled by labeler versions v1 and v2 (a promotion between runs)."""
    samples = make_samples(2)
    store.add_samples(samples, source="t")
    ids = [s.sample_id for s in samples]
    label_and_route(store, ids[:1], TableLabeler({ids[0]: 0.95}, "v1"), _fixed(POLICY))
    label_and_route(store, ids[1:], TableLabeler({ids[1]: 0.95}, "v2"), _fixed(POLICY))
    return ids


def test_judge_stage_chooses_the_policy_per_labeler_version(store: Store) -> None:
    ids = _labeled_pair(store)
    strict = RoutingPolicy(high=0.8, low=0.6, audit_rate=0.0, judge_threshold=0.95)
    asked: list[str | None] = []

    def policy_for(version: str | None) -> RoutingPolicy:
        asked.append(version)
        return strict if version == "v2" else POLICY

    judge = TableJudge({ids[0]: 0.9, ids[1]: 0.9})
    counts = judge_and_route(store, ids, judge, None, policy_for)  # type: ignore[arg-type]
    assert counts == JudgeStageCounts(judged=2, accepted=1, escalated=1,
                                      reasons={"judge_agrees": 1, "judge_low_confidence": 1})  # fmt: skip
    assert sorted(asked) == ["v1", "v2"]
    assert set(store.get_final_labels(ids)) == {ids[0]}
    routes = store.get_routes(ids)
    assert routes[ids[1]]["judge"].reasons[-1] == RouteReason.judge_low_confidence
    assert store.ids_in_state(SampleState.human_pending) == [ids[1]]
    assert judge_and_route(store, ids, judge, None, policy_for) == JudgeStageCounts()  # type: ignore[arg-type]
    assert judge.judged == [ids]


def test_reviewer_critiques_go_only_to_escalated_samples(store: Store) -> None:
    ids = _labeled_pair(store)
    built: list[TableJudge] = []

    def critic() -> TableJudge:
        built.append(TableJudge({ids[0]: 0.9, ids[1]: 0.2}, critique="principle 1: B is kinder"))
        return built[-1]

    judge = TableJudge({ids[0]: 0.9, ids[1]: 0.2})  # disagrees with the labeler on ids[1]
    counts = judge_and_route(store, ids, judge, None, _fixed(POLICY), critic)  # type: ignore[arg-type]
    assert counts.accepted == 1 and counts.reasons == {"judge_agrees": 1, "judge_disagrees": 1}
    assert len(built) == 1 and built[0].judged == [[ids[1]]]
    verdicts = store.get_verdicts(ids)
    assert verdicts[ids[0]].critique is None and verdicts[ids[1]].critique == "principle 1: B is kinder"


def test_no_critic_is_built_when_nothing_escalates(store: Store) -> None:
    ids = _labeled_pair(store)
    built: list[int] = []
    judge = TableJudge({ids[0]: 0.9, ids[1]: 0.9})
    counts = judge_and_route(store, ids, judge, None, _fixed(POLICY), lambda: built.append(1))  # type: ignore[arg-type]
    assert counts.accepted == 2 and built == []


def test_run_summary_adds_up_the_chunks() -> None:
    from labeling.cascade import JudgeStageCounts, LabelerStageCounts, run_summary
    from labeling.export import Snapshot

    labeled = [LabelerStageCounts(labeled=3, to_judge=2, to_human=1, reasons={"confident": 2, "unsure": 1},
                                  confidence_sum=2.4),
               LabelerStageCounts(labeled=1, to_judge=1, reasons={"confident": 1}, confidence_sum=0.9)]
    judged = [JudgeStageCounts(judged=3, accepted=2, escalated=1, reasons={"judge_agrees": 2, "disagreement": 1})]
    snap = Snapshot(snapshot_id="abc", path="/snap", n_rows=2, counts_by_source={"judge": 2},
                    created_at="2026-12-01T00:00:00+00:00")
    summary = run_summary({"read": 4}, labeled, judged, snap, human_pending=2)
    assert summary["ai_labeled"] == 4 and summary["to_judge"] == 3 and summary["to_human"] == 1
    assert summary["route_reasons"] == {"confident": 3, "unsure": 1} and summary["mean_confidence"] == 0.825
    assert summary["judge_accepted"] == 2 and summary["judge_escalated"] == 1 and summary["human_pending"] == 2
    assert summary["snapshot_id"] == "abc" and summary["snapshot_rows"] == 2 and summary["ingested"] == {"read": 4}
    assert run_summary(None, [], [], snap, 0)["mean_confidence"] is None
