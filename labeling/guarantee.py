"""Confidence thresholds with a stated agreement guarantee (Learn then Test).

For a cascade stage (AI labeler, then judge), we pick the loosest confidence threshold t
such that, with probability at least 1 - delta over the calibration sample,

    P(stage's label != human label | confidence >= t) <= alpha.

Procedure (Angelopoulos et al. 2021, "Learn then Test"; Jung et al. 2024, "Trust or
Escalate"): each candidate threshold's null hypothesis "error rate > alpha" is rejected when the
exact Clopper-Pearson upper bound (Clopper & Pearson 1934) on the error rate of the calibration
samples it accepts is <= alpha; a multiple-testing procedure that controls the family-wise
error at delta (labeling.threshold_procedures; default: fixed-sequence on a 10 % coverage grid)
picks which to test and in what order, from the confidences only, never the labels. This module
turns the outcome into a routing decision and says how many more audit labels would help. See
docs/routing-guarantee.md for the assumptions and the measured comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from labeling.calibration import ConfidenceCalibrator
from labeling.threshold_procedures import (
    DEFAULT_PROCEDURE,
    PROCEDURES,
    clopper_pearson_upper,
    coverage_grid,
    grid_step,
    min_accepted_for_zero_errors,
    run_procedure,
)

__all__ = ["clopper_pearson_upper", "min_accepted_for_zero_errors", "guaranteed_threshold", "labels_needed"]


def labels_needed(error_rate: float, coverage: float, alpha: float, delta: float, cap: int = 1_000_000) -> int | None:
    """Smallest calibration size N at which ``coverage * N`` accepted samples with the observed
    ``error_rate`` would give a Clopper-Pearson bound <= alpha; None when error_rate >= alpha."""
    if error_rate >= alpha or coverage <= 0:
        return None

    def passes(total: int) -> bool:
        n = max(1, math.floor(coverage * total))
        # Errors rounded up: the estimate should not promise a pass that rounding alone gives.
        return clopper_pearson_upper(math.ceil(error_rate * n - 1e-9), n, delta) <= alpha

    hi = 1
    while not passes(hi):
        hi *= 2
        if hi > cap:
            return None
    lo = hi // 2
    while lo + 1 < hi:  # the bound is not perfectly monotone in N (floors); this finds a passing N
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


class ThresholdTest(BaseModel):
    threshold: float
    n_accepted: int
    errors: int
    upper_bound: float
    passed: bool


class GuaranteeResult(BaseModel):
    """The chosen threshold (None = nothing qualifies: route everything onward) and its evidence."""

    stage: str
    threshold: float | None
    alpha: float
    delta: float
    n_calibration: int
    n_accepted: int = 0
    errors: int = 0
    upper_bound: float | None = None
    coverage: float = 0.0  # share of calibration samples the threshold auto-accepts
    labels_needed: int | None = None  # more audit labels needed when nothing qualified
    next_step_labels: int | None = None  # more audit labels that would certify the next coverage step
    next_step_coverage: float | None = None  # the coverage that next step would reach
    status: str
    tests: list[ThresholdTest] = Field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return self.model_dump(exclude={"tests"})


def guaranteed_threshold(
    confidence: Sequence[float],
    correct: Sequence[bool],
    alpha: float,
    delta: float,
    min_calibration_size: int = 100,
    stage: str = "labeler",
    eligible: Sequence[bool] | None = None,
    procedure: str = DEFAULT_PROCEDURE,
    stream_confidence: Sequence[float] | None = None,
    focus_above: float | None = None,
) -> GuaranteeResult:
    """Learn-then-Test threshold on ``confidence`` for a stage's ``correct`` flags, by ``procedure``
    (labeling.threshold_procedures; the default is the most powerful valid one measured).

    ``eligible`` marks samples the stage could ever auto-accept (the judge's swap-inconsistent
    verdicts are not): ineligible samples are never accepted, at any threshold.

    ``stream_confidence`` (every scored sample's confidence, audited or not) switches to the test
    for focused audits (labeling.audit_design): candidate thresholds on the stream's coverage grid,
    each tested by its stratified bound with the strata split at ``focus_above``; coverage is then
    the share of the stream accepted.
    """
    if not (0.0 < alpha < 1.0 and 0.0 < delta < 1.0):
        raise ValueError(f"alpha ({alpha}) and delta ({delta}) must both be in (0, 1)")
    if procedure not in PROCEDURES:
        raise ValueError(f"routing procedure {procedure!r} is unknown: use one of {', '.join(PROCEDURES)}")
    if stream_confidence is not None:
        # The focused test has its own procedure and takes no eligibility mask: refuse, not ignore.
        if eligible is not None or procedure != DEFAULT_PROCEDURE:
            raise ValueError("focused audits (stream_confidence) use their own stratified test: "
                             "pass neither eligible nor procedure with it")
        return _focused_threshold(confidence, correct, alpha, delta, min_calibration_size, stage,
                                  np.asarray(stream_confidence, dtype=float), focus_above)  # fmt: skip
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=bool)
    if conf.shape != ok.shape:
        raise ValueError(f"confidence has {conf.size} values but correct has {ok.size}: pass one per sample")
    elig = np.ones_like(ok) if eligible is None else np.asarray(eligible, dtype=bool)
    n_total = int(conf.size)
    base = {"stage": stage, "alpha": alpha, "delta": delta, "n_calibration": n_total}

    too_few = n_total < min_calibration_size
    tests: list[ThresholdTest] = []
    chosen: ThresholdTest | None = None
    if not too_few:
        run, best = run_procedure(conf[elig], ~ok[elig], alpha, delta, procedure)
        tests = [ThresholdTest(**vars(t)) for t in run]
        chosen = None if best is None else ThresholdTest(**vars(best))

    # Cumulative counts on every eligible sample, strictest first, for the "more labels" estimates.
    c_el, wrong_el = conf[elig], ~ok[elig]
    order = np.argsort(-c_el, kind="stable")
    cum_n = np.arange(1, c_el.size + 1)
    cum_k = np.cumsum(wrong_el[order])
    last_of_value = coverage_grid(c_el[order], grid_step(procedure))

    if chosen is not None:
        n_accepted = int(np.sum(elig & (conf >= chosen.threshold)))
        nxt = _next_step(cum_n, cum_k, last_of_value, n_accepted, n_total, alpha, delta)
        more = (
            f"about {nxt[0]} more audit labels would certify about {nxt[1]:.1%}, if the observed error rates hold"
            if nxt is not None
            else "more audit labels would not certify more coverage at the observed error rates"
        )
        return GuaranteeResult(
            **base,
            threshold=chosen.threshold,
            n_accepted=n_accepted,
            errors=int(cum_k[n_accepted - 1]),
            upper_bound=chosen.upper_bound,
            coverage=n_accepted / n_total,
            next_step_coverage=None if nxt is None else nxt[1],
            next_step_labels=None if nxt is None else nxt[0],
            status=(
                f"{stage}: auto-accept confidence >= {chosen.threshold:.4f} "
                f"({n_accepted}/{n_total} calibration samples, {int(cum_k[n_accepted - 1])} disagreements, "
                f"error bound {chosen.upper_bound:.3f} <= alpha {alpha} at delta {delta}, {procedure}); {more}"
            ),
            tests=tests,
        )

    estimate = _more_labels_needed(cum_n, cum_k, last_of_value, n_total, alpha, delta, min_calibration_size)
    needed = estimate[0] if estimate else None
    if too_few:
        why = f"only {n_total} audit labels, fewer than routing.min_calibration_size = {min_calibration_size}"
    elif not tests:
        why = f"no threshold accepts the {min_accepted_for_zero_errors(alpha, delta)} samples the first test needs"
    else:
        first = tests[0]
        why = (
            f"the first tested threshold {first.threshold:.4f} has {first.errors}/{first.n_accepted} "
            f"disagreements, error bound {first.upper_bound:.3f} > alpha {alpha}"
        )
    if needed is not None:
        more = (
            f"about {needed} more audit labels would let it auto-accept about {estimate[1]:.1%} "
            "of samples, if the observed error rates hold"
        )
    elif too_few or not _has_estimate(cum_n):
        needed = max(min_calibration_size - n_total, 1)
        more = f"too few labels to judge the labeler: collect at least {needed} more audit labels"
    else:
        more = (
            "more labels will not help: the observed error rate is >= alpha at every threshold "
            "(the labeler is too weak)"
        )
    return GuaranteeResult(
        **base,
        threshold=None,
        labels_needed=needed,
        next_step_labels=needed,
        next_step_coverage=estimate[1] if estimate else None,
        status=f"{stage}: no threshold qualifies ({why}); routing everything onward; {more}",
        tests=tests,
    )


def _next_step(
    cum_n: np.ndarray, cum_k: np.ndarray, grid: np.ndarray, n_chosen: int, n_total: int, alpha: float, delta: float
) -> tuple[int, float] | None:
    """(more audit labels, coverage) at the first grid threshold looser than the chosen one, if
    its observed error rate held; None when that error rate is already >= alpha."""
    looser = [int(i) for i in grid if cum_n[i] > n_chosen]
    if not looser:
        return None
    n, k = int(cum_n[looser[0]]), int(cum_k[looser[0]])
    total = labels_needed(k / n, n / n_total, alpha, delta)
    return None if total is None else (max(total - n_total, 1), n / n_total)


_MIN_EXTRAPOLATE = 20


def _has_estimate(cum_n: np.ndarray) -> bool:
    return bool(cum_n.size and cum_n[-1] >= _MIN_EXTRAPOLATE)


def _more_labels_needed(
    cum_n: np.ndarray,
    cum_k: np.ndarray,
    last_of_value: np.ndarray,
    n_total: int,
    alpha: float,
    delta: float,
    min_calibration_size: int,
) -> tuple[int, float] | None:
    """(fewest extra labels, coverage then reached) after which some threshold, keeping its observed coverage and error
    rate, would pass. Thresholds accepting fewer than ``_MIN_EXTRAPOLATE`` samples are too noisy
    to extrapolate from (zero errors in five samples would promise a pass far too soon)."""
    best: tuple[int, float] | None = None
    for i in last_of_value:
        n, k = int(cum_n[i]), int(cum_k[i])
        if n < _MIN_EXTRAPOLATE:
            continue
        total = labels_needed(k / n, n / n_total, alpha, delta)
        if total is not None:
            total = max(total, min_calibration_size)
            if best is None or total < best[0]:
                best = (total, n / n_total)
    if best is None:
        return None
    return max(best[0] - n_total, 1), best[1]


def _focused_threshold(
    confidence: Sequence[float],
    correct: Sequence[bool],
    alpha: float,
    delta: float,
    min_calibration_size: int,
    stage: str,
    stream: np.ndarray,
    focus_above: float | None,
) -> GuaranteeResult:
    """guaranteed_threshold for focused audits; the extra-labels estimate scales every stratum's audits alike."""
    from labeling.audit_design import focused_fixed_sequence, labels_to_pass_next

    conf, wrong = np.asarray(confidence, dtype=float), ~np.asarray(correct, dtype=bool)
    base = {"stage": stage, "alpha": alpha, "delta": delta, "n_calibration": int(conf.size)}
    if conf.size < min_calibration_size:
        return GuaranteeResult(**base, threshold=None, labels_needed=min_calibration_size - conf.size,
                               status=f"{stage}: no threshold qualifies (only {conf.size} audit labels, fewer than "
                               f"routing.min_calibration_size = {min_calibration_size}); routing everything onward")  # fmt: skip
    run, chosen = focused_fixed_sequence(conf, wrong, stream, focus_above, alpha, delta)
    tests = [ThresholdTest(**vars(t)) for t in run]
    after = None if chosen is None else chosen.threshold
    nxt = labels_to_pass_next(conf, wrong, stream, focus_above, alpha, delta, after)
    more = (
        f"about {nxt[0]} more audit labels, drawn as now, would certify about {nxt[1]:.1%}, if the observed error "
        "rates hold" if nxt else "more audit labels would not certify more coverage at the observed error rates"
    )  # fmt: skip
    cut = "uniform audits" if focus_above is None else f"focused audits above {focus_above}"
    extra = {"next_step_labels": nxt and nxt[0], "next_step_coverage": nxt and nxt[1], "tests": tests}
    if chosen is None:
        why = "no candidate threshold has enough audits" if not run else (
            f"the first tested threshold {run[0].threshold:.4f} has error bound {run[0].upper_bound:.3f} > alpha {alpha}")  # fmt: skip
        return GuaranteeResult(**base, threshold=None, labels_needed=nxt and nxt[0], **extra,
                               status=f"{stage}: no threshold qualifies ({why}, {cut}); routing everything onward; {more}")  # fmt: skip
    coverage = float(np.mean(stream >= chosen.threshold))
    return GuaranteeResult(
        **base, threshold=chosen.threshold, n_accepted=chosen.n_accepted, errors=chosen.errors,
        upper_bound=chosen.upper_bound, coverage=coverage, **extra,
        status=(f"{stage}: auto-accept confidence >= {chosen.threshold:.4f} ({coverage:.1%} of the stream; "
                f"{chosen.errors}/{chosen.n_accepted} audits disagree, stratified error bound {chosen.upper_bound:.3f} "
                f"<= alpha {alpha} at delta {delta}, {cut}); {more}"),
    )  # fmt: skip


class ActiveThresholds(BaseModel):
    """What routing uses in place of the hand-set ``routing.high`` once calibrated.

    Thresholds are on *raw* confidence, max(p_a, 1 - p_a) as the labeler/judge emits it
    (``AILabel.confidence``, ``JudgeVerdict.confidence``): calibration is monotone, so the
    order is the same and raw keeps full resolution where isotonic calibration has plateaus.
    None = no threshold qualified (or drift): auto-accept nothing, route everything onward.
    ``calibrator`` maps a raw p_a to a calibrated probability (for stored confidences).
    """

    version: str
    labeler_version: str | None = None
    labeler_threshold: float | None
    judge_threshold: float | None = None
    calibrator: ConfidenceCalibrator = Field(default_factory=ConfidenceCalibrator)
    alpha: float
    delta: float
    drift: bool = False
    status: str

    def labeler_accepts(self, confidence: float) -> bool:
        return self.labeler_threshold is not None and confidence >= self.labeler_threshold

    def judge_accepts(self, confidence: float | None, swap_consistent: bool) -> bool:
        # Swap-inconsistent verdicts never auto-accept, whatever their averaged confidence.
        return (
            self.judge_threshold is not None
            and swap_consistent
            and confidence is not None
            and confidence >= self.judge_threshold
        )
