"""labeling/guarantee.py: the threshold procedure on synthetic streams with known error rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labeling.guarantee import (
    ActiveThresholds,
    clopper_pearson_upper,
    guaranteed_threshold,
    labels_needed,
    min_accepted_for_zero_errors,
)
from labeling.threshold_procedures import PROCEDURES

ALPHA, DELTA = 0.2, 0.1


def error_rate_at(confidence: np.ndarray) -> np.ndarray:
    """Known truth: P(error | confidence c) = 1 - c, confidences uniform on [0.5, 1]."""
    return 1.0 - confidence


def true_risk_above(t: float) -> float:
    # E[1 - C | C >= t] for C ~ U(0.5, 1) is 1 - (t + 1) / 2.
    return 1.0 - (t + 1.0) / 2.0


def stream(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.uniform(0, 1, n) >= error_rate_at(conf)
    return conf, correct


def test_clopper_pearson_known_values() -> None:
    # Zero errors: the bound is 1 - delta^(1/n).
    assert clopper_pearson_upper(0, 10, 0.1) == pytest.approx(1 - 0.1 ** (1 / 10))
    assert clopper_pearson_upper(5, 5, 0.1) == 1.0
    assert clopper_pearson_upper(0, 0, 0.1) == 1.0
    # The bound is above the point estimate and shrinks with n.
    assert clopper_pearson_upper(20, 100, 0.1) > 0.2 > clopper_pearson_upper(200, 1000, 0.1) - 0.03
    assert min_accepted_for_zero_errors(0.28, 0.1) == 8  # 1 - 0.1^(1/7) = 0.281 > 0.28


def test_guarantee_holds_over_many_seeds() -> None:
    """The realised error rate above the chosen threshold exceeds alpha in <= delta of runs."""
    violations = chosen = 0
    seeds = 500
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        conf, correct = stream(300, rng)
        res = guaranteed_threshold(conf, correct, ALPHA, DELTA, min_calibration_size=100)
        if res.threshold is None:
            continue
        chosen += 1
        violations += true_risk_above(res.threshold) > ALPHA
    assert chosen > 0.9 * seeds  # the procedure has power here
    # Binomial slack: with a true rate of delta, 500 runs exceed delta + 0.03 under 0.3% of the time.
    assert violations / seeds <= DELTA + 0.03


def test_threshold_is_useful_not_just_safe() -> None:
    conf, correct = stream(3000, np.random.default_rng(7))
    res = guaranteed_threshold(conf, correct, ALPHA, DELTA)
    # The loosest safe threshold is t* = 0.6 (risk exactly 0.2); with 3000 labels we get close.
    assert res.threshold is not None and 0.6 <= res.threshold < 0.7
    assert res.upper_bound <= ALPHA and res.coverage > 0.6
    assert all(t.passed for t in res.tests[:-1])


def test_refuses_with_too_few_labels_and_says_how_many_more() -> None:
    conf, correct = stream(40, np.random.default_rng(3))
    res = guaranteed_threshold(conf, correct, ALPHA, DELTA, min_calibration_size=100)
    assert res.threshold is None
    assert "fewer than routing.min_calibration_size" in res.status
    assert res.labels_needed is not None and res.labels_needed >= 60


def test_refuses_a_weak_labeler_and_says_labels_will_not_help() -> None:
    rng = np.random.default_rng(4)
    conf = rng.uniform(0.5, 1.0, 500)
    correct = rng.uniform(0, 1, 500) < 0.6  # 40% errors everywhere, alpha 20%
    res = guaranteed_threshold(conf, correct, ALPHA, DELTA)
    assert res.threshold is None
    assert res.labels_needed is None and "too weak" in res.status


def test_labels_needed_is_the_smallest_passing_size() -> None:
    n = labels_needed(error_rate=0.1, coverage=1.0, alpha=0.2, delta=0.1)
    assert n is not None
    assert clopper_pearson_upper(math.ceil(0.1 * n), n, 0.1) <= 0.2
    assert clopper_pearson_upper(math.ceil(0.1 * (n - 1)), n - 1, 0.1) > 0.2


def test_ineligible_samples_are_never_accepted() -> None:
    conf = np.full(200, 0.99)
    correct = np.ones(200, bool)
    eligible = np.arange(200) < 150  # e.g. 50 swap-inconsistent judge verdicts
    res = guaranteed_threshold(conf, correct, ALPHA, DELTA, eligible=eligible, stage="judge")
    assert res.n_accepted == 150 and res.coverage == pytest.approx(0.75)


def test_active_thresholds_accepts() -> None:
    active = ActiveThresholds(
        version="v1", labeler_threshold=0.8, judge_threshold=0.7, alpha=0.2, delta=0.1, status="ok"
    )
    assert active.labeler_accepts(0.85) and not active.labeler_accepts(0.79)
    assert active.judge_accepts(0.9, swap_consistent=True)
    assert not active.judge_accepts(0.9, swap_consistent=False)
    off = ActiveThresholds(version="v2", labeler_threshold=None, alpha=0.2, delta=0.1, status="drift")
    assert not off.labeler_accepts(1.0) and not off.judge_accepts(1.0, True)


def test_load_active_thresholds_from_store(tmp_path) -> None:
    from labeling.calibration import fit_calibrator
    from labeling.records import read_active_thresholds as load_active_thresholds
    from labeling.store import Store

    store = Store(f"sqlite:///{tmp_path / 'j.db'}")
    assert load_active_thresholds(store) is None
    cal = fit_calibrator([0.9, 0.8, 0.3, 0.6], [True, True, False, False], method="temperature")
    store.put_record(
        "thresholds", "active",
        {"version": "v9", "labeler_threshold": 0.83, "judge_threshold": None, "calibrator": cal.model_dump(),
         "alpha": 0.28, "delta": 0.1, "status": "labeler: auto-accept confidence >= 0.83", "n_audit": 4},
    )  # fmt: skip
    active = load_active_thresholds(store)
    assert active is not None and active.version == "v9" and active.labeler_threshold == 0.83
    assert active.calibrator.method == "temperature"
    assert float(active.calibrator.calibrate_p_a(0.9)) == pytest.approx(float(cal.calibrate_p_a(0.9)))


@pytest.mark.parametrize("procedure", PROCEDURES)
def test_every_procedure_keeps_the_guarantee_over_many_seeds(procedure: str) -> None:
    """Known error curve P(error | c) = 1 - c: the true risk above the chosen threshold exceeds
    alpha in <= delta of calibration sets (binomial slack for 300 seeds), and the procedure has power."""
    violations = chosen = 0
    seeds = 300
    for seed in range(seeds):
        conf, correct = stream(400, np.random.default_rng(1000 + seed))
        res = guaranteed_threshold(conf, correct, ALPHA, DELTA, procedure=procedure)
        if res.threshold is not None:
            chosen += 1
            violations += true_risk_above(res.threshold) > ALPHA
    assert chosen > 0.7 * seeds
    assert violations / seeds <= DELTA + 0.04


def test_the_validity_check_catches_a_procedure_without_a_guarantee() -> None:
    """The check above can fail: the plug-in rule (loosest threshold whose observed error is
    <= alpha, no bound) violates in far more than delta of the seeds on the same stream."""
    violations = 0
    for seed in range(300):
        conf, correct = stream(400, np.random.default_rng(1000 + seed))
        order = np.argsort(-conf)
        observed = np.cumsum(~correct[order]) / np.arange(1, conf.size + 1)
        ok = np.nonzero(observed <= ALPHA)[0]
        violations += true_risk_above(float(conf[order][ok[-1]])) > ALPHA
    assert violations / 300 > DELTA + 0.04


@pytest.mark.parametrize("procedure", ["fixed-sequence", "learn-then-test", "bonferroni"])
def test_default_candidates_are_more_powerful_than_the_strict_start(procedure: str) -> None:
    """Mean coverage over seeds on a labeler whose most confident samples are not error-free:
    a start at the strictest threshold stops at the first early error."""
    cover: dict[str, list[float]] = {procedure: [], "strict-sequence": []}
    for seed in range(60):
        rng = np.random.default_rng(seed)
        conf = rng.uniform(0.5, 1.0, 600)
        correct = rng.uniform(0, 1, 600) >= 0.08 + 0.5 * (1.0 - conf)  # 8 % errors even at c = 1
        for name in cover:
            cover[name].append(guaranteed_threshold(conf, correct, 0.28, DELTA, procedure=name).coverage)
    assert np.mean(cover[procedure]) > np.mean(cover["strict-sequence"])


def test_candidate_thresholds_do_not_depend_on_the_labels() -> None:
    conf, correct = stream(500, np.random.default_rng(11))
    first = guaranteed_threshold(conf, correct, ALPHA, DELTA).tests
    flipped = guaranteed_threshold(conf, np.ones_like(correct), ALPHA, DELTA).tests
    # The same thresholds in the same order; only how far the sequence gets depends on the labels.
    assert [t.threshold for t in first] == [t.threshold for t in flipped][: len(first)]


def test_unknown_procedure_is_named() -> None:
    conf, correct = stream(200, np.random.default_rng(2))
    with pytest.raises(ValueError, match="procedure 'best-guess' is unknown"):
        guaranteed_threshold(conf, correct, ALPHA, DELTA, procedure="best-guess")


def test_says_how_many_more_labels_certify_the_next_coverage_step() -> None:
    conf, correct = stream(400, np.random.default_rng(5))
    res = guaranteed_threshold(conf, correct, ALPHA, DELTA)
    assert res.threshold is not None and res.next_step_labels is not None
    assert res.next_step_coverage is not None and res.next_step_coverage > res.coverage
    assert f"about {res.next_step_labels} more audit labels would certify" in res.status
    # The estimate is real: the next step's observed error rate passes at that calibration size.
    n_next = math.floor(res.next_step_coverage * (400 + res.next_step_labels))
    order = np.argsort(-conf)
    k_rate = float(np.mean(~correct[order][: round(res.next_step_coverage * 400)]))
    assert clopper_pearson_upper(math.ceil(k_rate * n_next - 1e-9), n_next, DELTA) <= ALPHA
