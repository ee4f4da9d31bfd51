"""labeling/label_risk.py: p_wrong per label from the judge's accepted audits and the annotators' overlap."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from labeling.audit_design import AuditDesign
from labeling.export import export_snapshot, load_snapshot
from labeling.label_risk import (
    AnnotatorRisk,
    LabelRisk,
    annotator_risk,
    audit_design_of,
    estimate_label_risk,
    fit_judge_risk,
    jeffreys_rate,
)
from labeling.schemas import AILabel, FinalLabel, HumanLabel, JudgeVerdict, LabelSource, Route, RouteReason
from labeling.store import Store
from tests.labeling.conftest import make_samples


def test_judge_risk_bins_by_confidence_and_never_rises_with_it() -> None:
    # 60 audits at 0.7 with 12 errors, 60 at 0.9 with 3: two bins, Jeffreys means.
    conf = [0.7] * 60 + [0.9] * 60
    wrong = [True] * 12 + [False] * 48 + [True] * 3 + [False] * 57
    curve = fit_judge_risk(conf, wrong, min_bin=30)
    assert curve is not None and curve.lower_edges == [0.7, 0.9] and curve.n == [60, 60]
    assert curve.p_wrong == [pytest.approx(12.5 / 61), pytest.approx(3.5 / 61)]
    assert curve.at(0.95) == curve.p_wrong[1] and curve.at(0.75) == curve.p_wrong[0]
    assert curve.at(0.5) == curve.p_wrong[0]  # below every edge: the least confident bin
    # The more confident half is worse here: the two bins pool into one, 15 errors in 120.
    inverted = fit_judge_risk(conf, [False] * 60 + [True] * 15 + [False] * 45, min_bin=30)
    assert inverted is not None and inverted.n == [120] and inverted.p_wrong == [pytest.approx(15.5 / 121)]
    assert fit_judge_risk([], []) is None
    with pytest.raises(ValueError, match="one per audit"):
        fit_judge_risk([0.9], [True, False])


def test_annotator_error_from_pairwise_disagreement() -> None:
    units = [["A", "A", "A"]] * 10 + [["A", "B"]] * 2 + [["B"], ["A", "tie"]]  # singles and ties carry no pair
    risk = annotator_risk(units)
    assert risk is not None and (risk.n_units, risk.n_pairs, risk.disagreements) == (12, 32, 2)
    d = 2.5 / 33
    assert risk.error_rate == pytest.approx((1 - math.sqrt(1 - 2 * d)) / 2)
    assert 2 * risk.error_rate * (1 - risk.error_rate) == pytest.approx(d)
    assert annotator_risk([["A"], ["B", "tie"]]) is None


def test_majorities_are_safer_than_one_annotator() -> None:
    risk = AnnotatorRisk(n_units=1, n_pairs=1, disagreements=0, error_rate=0.1)
    assert risk.majority_p_wrong(1, 1) == pytest.approx(0.1)
    assert risk.majority_p_wrong(3, 2) == pytest.approx(0.1)  # one vote cancels another
    assert risk.majority_p_wrong(3, 3) == pytest.approx(0.001 / (0.001 + 0.729))
    assert risk.majority_p_wrong(2, 1) == 0.5


def test_p_wrong_per_source_and_null_without_evidence() -> None:
    curve = fit_judge_risk([0.8] * 40, [True] * 4 + [False] * 36)
    risk = LabelRisk(judge=curve, annotator=AnnotatorRisk(n_units=5, n_pairs=5, disagreements=1, error_rate=0.2))
    judge = FinalLabel(sample_id="j", preferred="A", source=LabelSource.judge, confidence=0.85)
    single = FinalLabel(sample_id="h", preferred="B", source=LabelSource.human, confidence=1.0, n_annotators=1)
    three = FinalLabel(
        sample_id="m", preferred="A", source=LabelSource.human_over_judge, confidence=1.0, n_annotators=3
    )
    assert risk.p_wrong(judge) == round(4.5 / 41, 6)
    assert risk.p_wrong(single) == pytest.approx(0.2)
    assert risk.p_wrong(three) == pytest.approx(0.008 / (0.008 + 0.512), abs=1e-6)
    assert LabelRisk().p_wrong(judge) is None and LabelRisk().p_wrong(single) is None
    assert LabelRisk(judge_bound=0.28).p_wrong(judge) == 0.28
    card = risk.card_section()
    assert "| judge confidence >= 0.800 | 40 | 4 |" in card and "eps = 0.2000" in card
    assert "p_wrong = null" in LabelRisk().card_section()


def audited_store(tmp_path: Path) -> tuple[Store, list[str]]:
    """Four accepted audits (one wrong), one rejected audit, two overlap tasks and one judge label."""
    st = Store(f"sqlite:///{tmp_path / 'juryflow.db'}")
    samples = make_samples(8)
    st.add_samples(samples, "fixture")
    ids = [s.sample_id for s in samples]
    st.record_ai_labels([AILabel(sample_id=i, p_a=0.9, labeler_name="l", labeler_version="l1") for i in ids])
    high = [RouteReason.high_confidence]
    st.record_routes([Route(sample_id=i, to_judge=True, to_human=False, reasons=high) for i in ids], "labeler")
    accepted = [RouteReason.high_confidence, RouteReason.audit, RouteReason.judge_agrees]
    st.record_routes(
        [Route(sample_id=ids[6], to_judge=True, to_human=False, accept_judge=True, reasons=high)], "judge"
    )
    # ids 0-3: audits routing would have accepted; id 4: an audit the judge disagreed on (not accepted).
    st.record_routes([Route(sample_id=i, to_judge=True, to_human=True, reasons=accepted) for i in ids[:4]], "judge")
    st.record_routes(
        [
            Route(
                sample_id=ids[4], to_judge=True, to_human=True, reasons=[RouteReason.audit, RouteReason.judge_disagrees]
            )
        ],
        "judge",
    )
    st.record_verdicts(
        [JudgeVerdict(sample_id=i, p_a_original=0.9, p_a_swapped=0.9, model="m", version="j1") for i in ids[:5]]
    )
    humans = ["A", "A", "A", "B", "B"]  # the judge said A everywhere: one accepted audit was wrong
    votes = {ids[0]: ["A", "A"], ids[1]: ["A", "B", "A"]}
    st.record_human_labels(
        [
            HumanLabel(sample_id=sid, annotation_id=f"{sid}-{n}", annotator=f"u{n}", choice=choice)
            for sid, choices in votes.items()
            for n, choice in enumerate(choices)
        ]
    )
    st.record_final_labels(
        [FinalLabel(sample_id=i, preferred=h, source=LabelSource.human, n_annotators=1) for i, h in zip(ids, humans)]
        + [FinalLabel(sample_id=ids[6], preferred="A", source=LabelSource.judge, confidence=0.9)]
    )
    return st, ids


def test_estimate_from_the_store_uses_accepted_audits_and_overlap(tmp_path: Path) -> None:
    st, ids = audited_store(tmp_path)
    risk = estimate_label_risk(st)
    assert risk.judge is not None and risk.judge.n == [4] and risk.judge.errors == [1]
    assert risk.p_wrong(FinalLabel(sample_id=ids[6], preferred="A", source=LabelSource.judge, confidence=0.9)) == (
        round(jeffreys_rate(1, 4), 6)
    )
    assert risk.annotator is not None and (risk.annotator.n_pairs, risk.annotator.disagreements) == (4, 2)
    assert risk.judge_bound is None  # no guaranteed judge threshold recorded
    st.close()


def test_export_writes_p_wrong_and_the_card_states_the_estimates(tmp_path: Path) -> None:
    st, ids = audited_store(tmp_path)
    snap = export_snapshot(st, tmp_path / "snaps", {})
    rows = {r["sample_id"]: r for r in load_snapshot(snap.path)}
    assert rows[ids[6]]["p_wrong"] == round(jeffreys_rate(1, 4), 6)
    # 2 of 4 annotator pairs disagree: D = 2.5 / 5 = 1/2, annotators no better than chance.
    assert rows[ids[0]]["p_wrong"] == 0.5
    card = (snap.path / "README.md").read_text(encoding="utf-8")
    assert "## Label risk (`p_wrong`)" in card and "| judge confidence >= 0.900 | 4 | 1 |" in card
    st.close()


def test_focused_audits_are_weighted_by_their_inclusion_probability() -> None:
    # Judge-accepted stream: labeler confidence U(0.7, 1); the judge errs 30 % below labeler confidence
    # 0.85 and 2 % above, at judge confidences that say nothing of it. Focused audits draw 5 % below the
    # cut and 50 % above: unweighted, the audits see mostly the clean stratum.
    rng = np.random.default_rng(7)
    n = 20_000
    labeler_conf = rng.uniform(0.7, 1.0, n)
    judge_conf = rng.uniform(0.6, 1.0, n)
    wrong = rng.random(n) < np.where(labeler_conf < 0.85, 0.30, 0.02)
    design = AuditDesign(rate=0.05, focus_above=0.85, focus_rate=0.5)
    probability = np.array([design.probability(float(c)) for c in labeler_conf])
    audited = rng.random(n) < probability
    true_rate = wrong.mean()  # about 0.16

    def stream_p_wrong(curve) -> float:  # the mean p_wrong the judge labels of the stream would get
        return float(np.mean([curve.at(float(c)) for c in judge_conf]))

    plain = fit_judge_risk(judge_conf[audited], wrong[audited])
    weighted = fit_judge_risk(judge_conf[audited], wrong[audited], weights=1 / probability[audited])
    assert plain is not None and weighted is not None and weighted.weighted
    assert stream_p_wrong(plain) < true_rate - 0.08  # biased: about 0.045
    assert abs(stream_p_wrong(weighted) - true_rate) < 0.03
    assert abs(weighted.at(None) - true_rate) < 0.03
    with pytest.raises(ValueError, match="one positive value per audit"):
        fit_judge_risk([0.9, 0.8], [True, False], weights=[1.0, 0.0])


def test_export_passes_the_focused_design_from_the_routing_record(tmp_path: Path) -> None:
    assert audit_design_of({}) is None and audit_design_of({"audit_rate": 0.05}) is None
    routing = {"audit_rate": 0.5, "audit_focus_above": 0.85, "audit_focus_rate": 1.0}
    assert audit_design_of(routing) == AuditDesign(0.5, 0.85, 1.0)
    st, ids = audited_store(tmp_path)  # every labeler confidence is 0.9: inclusion probability 1, weight 1
    risk = estimate_label_risk(st, audit_design_of(routing))
    assert risk.judge is not None and risk.judge.weighted and risk.judge.n == [4] and risk.judge.errors == [1.0]
    snap = export_snapshot(st, tmp_path / "snaps", routing)
    card = (snap.path / "README.md").read_text(encoding="utf-8")
    assert "each audit is weighted by 1 / its probability" in card
    st.close()
