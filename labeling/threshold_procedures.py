"""Multiple-testing procedures that pick a guaranteed confidence threshold (see labeling.guarantee).

Every procedure tests hypotheses H_j: "error rate among samples with confidence >= t_j is > alpha"
with the exact Clopper-Pearson bound, and controls the family-wise error at delta, so the loosest
rejected t_j is valid: P(error above it > alpha) <= delta. They differ in which t_j they test and
in what order, and both are fixed by the confidences (or a separate learn split), never by the
labels being tested:

- ``fixed-sequence`` (default): a 10 % coverage grid, from the first threshold at which a labeler
  with error alpha/2 could pass, looser while tests pass; every test at the full level delta.
  A coarse grid means fewer tests, so fewer chances for one noisy stretch to end the sequence
  (measured: a 10 % grid beats 5 % and 2.5 % on the HH file and on a flat synthetic curve).
- ``strict-sequence``: the first procedure juryflow shipped: a 2.5 % grid from the strictest
  threshold that could pass with zero errors (8 samples at alpha 0.28); one early error ends it.
- ``bonferroni``: every point of the 5 % grid, each at delta / m; the loosest that passes.
- ``fallback``: the 5 % grid strictest to loosest, each test owning delta / m; a rejection hands
  its level on to the next test (Wiens 2003), so one failure does not end the search.
- ``learn-then-test``: a random 30 % learn split orders the hypotheses (start at the loosest
  threshold the learn split predicts will pass, then looser); the rest is tested at delta.

``benchmarks/guarantee_power.py`` measures coverage, efficiency and validity of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROCEDURES = ("fallback", "fixed-sequence", "strict-sequence", "bonferroni", "learn-then-test")
DEFAULT_PROCEDURE = "fixed-sequence"
LEARN_SHARE = 0.3
_GRID_STEP = {
    "fallback": 0.05,
    "fixed-sequence": 0.1,
    "strict-sequence": 0.025,
    "bonferroni": 0.05,
    "learn-then-test": 0.05,
}


@dataclass(frozen=True)
class Tested:
    """One hypothesis tested: threshold, accepted samples, their errors, the bound and the outcome."""

    threshold: float
    n_accepted: int
    errors: int
    upper_bound: float
    passed: bool


def clopper_pearson_upper(errors: int | np.ndarray, n: int | np.ndarray, delta: float) -> float | np.ndarray:
    """One-sided exact (1 - delta) upper confidence bound on a binomial rate from k errors in n."""
    from scipy.stats import beta  # noqa: PLC0415 - scipy.stats costs ~2 s to import; only fitting needs it

    k, m = np.asarray(errors, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ub = beta.ppf(1.0 - delta, k + 1, np.maximum(m - k, 1e-12))
    ub = np.where((m <= 0) | (k >= m), 1.0, ub)
    return float(ub) if ub.ndim == 0 else ub


def min_accepted_for_zero_errors(alpha: float, delta: float) -> int:
    """Smallest n whose bound with zero errors, 1 - delta^(1/n), is <= alpha."""
    return max(1, math.ceil(math.log(delta) / math.log(1.0 - alpha) - 1e-12))


def min_accepted_at_half_alpha(alpha: float, delta: float) -> int:
    """Smallest n at which a labeler whose error is alpha/2 would pass."""
    n = 1
    while clopper_pearson_upper(math.floor(alpha / 2 * n), n, delta) > alpha:
        n += 1
    return n


def grid_step(procedure: str = DEFAULT_PROCEDURE) -> float:
    """The coverage step between a procedure's candidate thresholds."""
    return _GRID_STEP[procedure]


def coverage_grid(c_sorted: np.ndarray, step: float) -> np.ndarray:
    """Indices (into confidences sorted high to low) of the candidate thresholds: the last sample
    of each coverage step, moved to the last of its ties ("confidence >= t" takes all ties)."""
    n = c_sorted.size
    if n == 0:
        return np.array([], dtype=int)
    ends = np.unique(np.clip(np.ceil(np.arange(step, 1.0 + step / 2, step) * n).astype(int) - 1, 0, n - 1))
    # The last index holding the same value as each end: searchsorted on the negated ascending copy.
    last = np.searchsorted(-c_sorted, -c_sorted[ends], side="right") - 1
    return np.unique(last)


def learn_split(n: int, seed: int = 0) -> np.ndarray:
    """A label-blind learn mask: a seeded LEARN_SHARE random share of the positions."""
    return np.random.default_rng(seed).random(n) < LEARN_SHARE


def run_procedure(
    conf: np.ndarray, wrong: np.ndarray, alpha: float, delta: float, procedure: str = DEFAULT_PROCEDURE
) -> tuple[list[Tested], Tested | None]:
    """(the tests run, the loosest passing one or None) for eligible samples' confidences and errors."""
    if procedure not in PROCEDURES:
        raise ValueError(f"routing procedure {procedure!r} is unknown: use one of {', '.join(PROCEDURES)}")
    learn = learn_split(conf.size) if procedure == "learn-then-test" else np.zeros(conf.size, dtype=bool)
    c_test, w_test = conf[~learn], wrong[~learn]
    order = np.argsort(-c_test, kind="stable")
    c_sorted, w_sorted = c_test[order], w_test[order]
    grid = coverage_grid(c_sorted, _GRID_STEP[procedure])
    cum_n, cum_k = grid + 1, np.cumsum(w_sorted)[grid] if grid.size else np.array([], dtype=int)
    thresholds = c_sorted[grid]
    if procedure == "bonferroni":
        level = delta / max(grid.size, 1)
        ub = clopper_pearson_upper(cum_k, cum_n, level) if grid.size else np.array([])
        tests = [_tested(thresholds[j], cum_n[j], cum_k[j], ub[j], alpha) for j in range(grid.size)]
        passed = [t for t in tests if t.passed]
        return tests, (passed[-1] if passed else None)
    if procedure == "fallback":
        return _fallback(thresholds, cum_n, cum_k, alpha, delta)
    if procedure == "learn-then-test":
        start = _learn_start(conf[learn], wrong[learn], thresholds, cum_n, alpha, delta)
    else:
        first_n = min_accepted_for_zero_errors(alpha, delta)
        if procedure == "fixed-sequence":
            first_n = max(first_n, min_accepted_at_half_alpha(alpha, delta))
        start = int(np.searchsorted(cum_n, first_n)) if grid.size else 0
    return _fixed_sequence(thresholds, cum_n, cum_k, start, alpha, delta)


def _tested(threshold: float, n: int, k: int, ub: float, alpha: float) -> Tested:
    ub = float(ub)
    return Tested(threshold=float(threshold), n_accepted=int(n), errors=int(k), upper_bound=ub, passed=ub <= alpha)


def _fixed_sequence(
    thresholds: np.ndarray, cum_n: np.ndarray, cum_k: np.ndarray, start: int, alpha: float, delta: float
) -> tuple[list[Tested], Tested | None]:
    """Test from ``start`` towards looser thresholds at level delta; stop at the first failure."""
    tests: list[Tested] = []
    chosen = None
    for j in range(start, thresholds.size):
        test = _tested(thresholds[j], cum_n[j], cum_k[j], clopper_pearson_upper(cum_k[j], cum_n[j], delta), alpha)
        tests.append(test)
        if not test.passed:
            break
        chosen = test
    return tests, chosen


def _fallback(
    thresholds: np.ndarray, cum_n: np.ndarray, cum_k: np.ndarray, alpha: float, delta: float
) -> tuple[list[Tested], Tested | None]:
    """The fallback procedure (Wiens 2003), strictest to loosest: each test owns delta / m, and a
    rejected hypothesis hands its whole level on to the next test, so one failure does not end the
    search (as in fixed-sequence) and a run of passes recovers the full delta (unlike Bonferroni)."""
    testable = np.nonzero(cum_n >= min_accepted_for_zero_errors(alpha, delta))[0]
    share = delta / max(testable.size, 1)
    tests: list[Tested] = []
    chosen, carried = None, 0.0
    for j in testable:
        level = share + carried
        test = _tested(thresholds[j], cum_n[j], cum_k[j], clopper_pearson_upper(cum_k[j], cum_n[j], level), alpha)
        tests.append(test)
        carried = level if test.passed else 0.0
        if test.passed:
            chosen = test
    return tests, chosen


def _learn_start(
    c_learn: np.ndarray,
    w_learn: np.ndarray,
    thresholds: np.ndarray,
    test_n: np.ndarray,
    alpha: float,
    delta: float,
) -> int:
    """The loosest candidate whose learn-split error, at its 70 % upper bound, would still pass
    with the test split's sample size there; the strictest candidate when none would."""
    start = 0
    for j, t in enumerate(thresholds):
        accepted = c_learn >= t
        n_l = int(accepted.sum())
        if n_l == 0:
            continue
        err_hi = float(clopper_pearson_upper(int(w_learn[accepted].sum()), n_l, 0.3))
        if clopper_pearson_upper(math.ceil(err_hi * test_n[j]), int(test_n[j]), delta) <= alpha:
            start = j
    return start
