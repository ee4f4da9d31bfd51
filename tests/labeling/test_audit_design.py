"""Focused audits (labeling/audit_design.py): the draw, the stratified test's validity and power,
and recalibration on audits drawn under a focused design. Known error curves, many seeds."""

from __future__ import annotations

import numpy as np
import pytest

from labeling.audit_design import (
    AuditDesign,
    focused_fixed_sequence,
    labels_to_pass_next,
    stratified_upper_bound,
)
from labeling.guarantee import clopper_pearson_upper, guaranteed_threshold
from labeling.recalibration import AuditSet, DriftCheck, fit_thresholds
from labeling.routing import audit_reasons, is_audited
from labeling.schemas import AILabel, RouteReason
from labeling.settings import RoutingSettings

ALPHA, DELTA = 0.2, 0.1


def stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Confidences uniform on [0.5, 1); P(wrong | c) = 0.5 - 0.6 (c - 0.5): flat enough at the top
    that certifying needs many audits there (error 0.2 at c = 1, 0.35 at the median)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    return conf, rng.random(n) < 0.5 - 0.6 * (conf - 0.5)


def draw_audits(conf: np.ndarray, design: AuditDesign, seed: int) -> np.ndarray:
    """Bernoulli audits at the design's inclusion probability (what routing's hash draw amounts to)."""
    rng = np.random.default_rng(seed)
    return np.nonzero(rng.random(conf.size) < np.array([design.probability(c) for c in conf]))[0]


def certified(conf, wrong, design: AuditDesign, seed: int, alpha: float = ALPHA) -> tuple[float, bool]:
    """(stream coverage, violated: error among the accepted stream samples > alpha)."""
    idx = draw_audits(conf, design, seed)
    _, chosen = focused_fixed_sequence(conf[idx], wrong[idx], conf, design.focus_above, alpha, DELTA)
    if chosen is None:
        return 0.0, False
    accepted = conf >= chosen.threshold
    return float(accepted.mean()), bool(wrong[accepted].mean() > alpha)


UNIFORM = AuditDesign(rate=0.05)
FOCUSED = AuditDesign(rate=0.02, focus_above=0.85, focus_rate=0.14)  # about the same number of labels


def test_design_probabilities_and_validation() -> None:
    assert FOCUSED.probability(0.9) == 0.14 and FOCUSED.probability(0.6) == 0.02 and FOCUSED.probability(None) == 0.02
    assert UNIFORM.probability(0.99) == 0.05 and not UNIFORM.focused and FOCUSED.focused
    with pytest.raises(ValueError, match="audit_focus_rate must be in"):
        AuditDesign(rate=0.1, focus_above=0.8, focus_rate=1.5)
    with pytest.raises(ValueError, match="need both"):
        AuditDesign(rate=0.1, focus_above=0.8)


def test_one_stratum_is_exactly_clopper_pearson() -> None:
    conf, wrong = stream(2000, 0)
    ub, n, k = stratified_upper_bound(0.9, conf, wrong, conf, None, DELTA)
    accepted = conf >= 0.9
    assert (n, k) == (accepted.sum(), (accepted & wrong).sum())
    assert ub == pytest.approx(clopper_pearson_upper(k, n, DELTA))


def test_two_strata_mix_the_bounds_by_stream_counts() -> None:
    conf, wrong = stream(4000, 1)
    audit = np.arange(0, 4000, 7)
    ub, _, _ = stratified_upper_bound(0.7, conf[audit], wrong[audit], conf, 0.85, DELTA)
    parts = []
    for lo, hi in ((0.7, 0.85), (0.85, 2.0)):
        in_a = (conf[audit] >= lo) & (conf[audit] < hi)
        size = int(((conf >= lo) & (conf < hi)).sum())
        parts.append((size, clopper_pearson_upper(int((in_a & wrong[audit]).sum()), int(in_a.sum()), DELTA / 2)))
    assert ub == pytest.approx(sum(s * b for s, b in parts) / sum(s for s, _ in parts))


@pytest.mark.parametrize("design", [UNIFORM, FOCUSED], ids=["uniform", "focused"])
def test_the_guarantee_holds_over_many_seeds(design: AuditDesign) -> None:
    conf, wrong = stream(20_000, 2)
    outcomes = [certified(conf, wrong, design, seed, alpha=0.3) for seed in range(200)]
    violations = np.mean([v for _, v in outcomes])
    assert np.mean([c for c, _ in outcomes]) > 0.05  # it does certify something, so the check means something
    assert violations <= DELTA + 3 * np.sqrt(DELTA * (1 - DELTA) / 200)


def test_focused_audits_certify_more_for_the_same_number_of_labels() -> None:
    conf, wrong = stream(20_000, 3)
    labels = {d: np.mean([draw_audits(conf, d, s).size for s in range(20)]) for d in (UNIFORM, FOCUSED)}
    assert abs(labels[FOCUSED] - labels[UNIFORM]) / labels[UNIFORM] < 0.1  # same budget, within 10 %
    cov = {d: np.mean([certified(conf, wrong, d, seed)[0] for seed in range(60)]) for d in (UNIFORM, FOCUSED)}
    assert cov[FOCUSED] > 1.5 * cov[UNIFORM]


def test_more_labels_estimate_is_enough_when_the_rates_hold() -> None:
    conf, wrong = stream(20_000, 4)
    idx = draw_audits(conf, UNIFORM, 0)
    _, chosen = focused_fixed_sequence(conf[idx], wrong[idx], conf, None, 0.3, DELTA)
    nxt = labels_to_pass_next(conf[idx], wrong[idx], conf, None, 0.3, DELTA, chosen and chosen.threshold)
    assert nxt is not None
    more, coverage = nxt
    assert more > 0 and 0 < coverage <= 1
    grown = AuditDesign(rate=UNIFORM.rate * (idx.size + more) / idx.size)
    covs = [certified(conf, wrong, grown, seed, alpha=0.3)[0] for seed in range(30)]
    assert np.mean([c >= coverage - 1e-9 for c in covs]) >= 0.3  # often reached: the estimate is not wildly low
    assert labels_to_pass_next(conf[idx], wrong[idx], conf, None, 0.1, DELTA, None) is None  # error > alpha everywhere


def test_routing_draws_at_the_focus_rate_above_the_cut_and_nests_the_uniform_draw() -> None:
    ids = [f"s{i}" for i in range(20_000)]
    hi = [AILabel(sample_id=s, p_a=0.95, labeler_name="m", labeler_version="v") for s in ids]
    lo = [AILabel(sample_id=s, p_a=0.6, labeler_name="m", labeler_version="v") for s in ids]
    share = {k: np.mean([bool(audit_reasons(lab.sample_id, lab, FOCUSED)) for lab in labs]) for k, labs in
             (("hi", hi), ("lo", lo))}  # fmt: skip
    assert share["hi"] == pytest.approx(0.14, abs=0.01) and share["lo"] == pytest.approx(0.02, abs=0.005)
    # Nested: whatever the base rate audits is also audited above the cut, so thinning can undo it.
    assert all(audit_reasons(lab.sample_id, lab, FOCUSED) == [RouteReason.audit] for lab in hi if is_audited(lab.sample_id, 0.02))


def test_guaranteed_threshold_reports_stream_coverage_for_focused_audits() -> None:
    conf, wrong = stream(20_000, 5)
    idx = draw_audits(conf, FOCUSED, 1)
    res = guaranteed_threshold(conf[idx], ~wrong[idx], 0.3, DELTA, 50, stream_confidence=conf, focus_above=0.85)
    assert res.threshold is not None
    assert res.coverage == pytest.approx(float(np.mean(conf >= res.threshold)))
    assert "focused audits above 0.85" in res.status and res.upper_bound <= 0.3


def test_focused_threshold_checks_its_arguments_like_the_plain_one() -> None:
    conf, wrong = stream(2_000, 7)
    idx = draw_audits(conf, FOCUSED, 1)
    focused = {"stream_confidence": conf, "focus_above": 0.85}
    with pytest.raises(ValueError, match=r"alpha \(1.5\) and delta"):
        guaranteed_threshold(conf[idx], ~wrong[idx], 1.5, DELTA, 50, **focused)
    with pytest.raises(ValueError, match="pass neither eligible nor procedure"):
        guaranteed_threshold(conf[idx], ~wrong[idx], 0.3, DELTA, 50, eligible=[True] * idx.size, **focused)


def test_recalibration_thins_audits_to_the_design_in_force_and_tests_them_stratified() -> None:
    conf, wrong = stream(20_000, 6)
    ids = [f"s{i:05d}" for i in range(conf.size)]
    p_a = conf  # the labeler prefers A with this confidence; the human agrees unless wrong
    # Audits as routing drew them under a richer design (every sample above the cut at 30 %).
    richer = AuditDesign(rate=0.02, focus_above=0.85, focus_rate=0.3)
    audited = [i for i in range(conf.size) if is_audited(ids[i], richer.probability(conf[i]))]
    audit = AuditSet(
        sample_id=[ids[i] for i in audited], p_a=[float(p_a[i]) for i in audited],
        labeler_version=["v1"] * len(audited), human_prefers_a=[not wrong[i] for i in audited],
        judge_p_a=[float(p_a[i]) for i in audited], judge_consistent=[True] * len(audited),
        stream_sample_id=ids, stream_p_a=p_a.tolist(), stream_labeler_version=["v1"] * len(ids),
    )  # fmt: skip
    routing = RoutingSettings(alpha=0.3, delta=DELTA, min_calibration_size=50, calibration_method="temperature",
                              audit_rate=0.02, audit_focus_above=0.85, audit_focus_rate=0.14)  # fmt: skip
    fit = fit_thresholds(audit, routing, set(), DriftCheck(message="no drift"))
    in_force = [i for i in audited if is_audited(ids[i], FOCUSED.probability(conf[i]))]
    assert fit.thresholds.n_audit == len(in_force) < len(audited)
    assert fit.thresholds.labeler_threshold is not None
    assert "focused audits above 0.85" in fit.thresholds.status
    # The same audits loaded without the stream: refused, never a silent "too few audits".
    bare = audit.model_copy(update={"stream_sample_id": [], "stream_p_a": [], "stream_labeler_version": []})
    with pytest.raises(ValueError, match="loaded without the stream"):
        fit_thresholds(bare, routing, set(), DriftCheck(message="no drift"))
