"""Focused audits: audit inclusion probabilities that depend on the labeler's confidence, and the
threshold test that stays valid under them.

A uniform audit spends most human labels where no threshold will ever be certified (low
confidence). A focused design audits samples at or above a confidence cut, fixed before any
label is seen, at a higher rate. Each audit then carries its known inclusion probability, and the
guarantee's test uses it (design-based inference, as in active statistical inference, Zrnic &
Candes 2024, and confidence-driven inference, Gligoric et al. 2025):

- Within one stratum (one inclusion probability) the audits are a uniform random sample of the
  stratum's samples, so for a threshold t inside the top stratum the audits with confidence >= t
  are a uniform sample of exactly the samples t accepts: the exact Clopper-Pearson test applies,
  unweighted (the inverse-probability weights are all equal and cancel).
- A threshold below the cut accepts samples of both strata. Its error rate is the mix
  sum_h N_h(t) e_h(t) / sum_h N_h(t) of the strata's error rates, weighted by how many samples of
  each stratum it accepts in the stream (N_h(t): counted from the labeler's confidences, which are
  known for every sample, audited or not). Each e_h(t) gets its Clopper-Pearson bound at
  delta / m (m strata touched; a union bound), and the mix of the bounds bounds the mix.

Either way each hypothesis is tested at level delta, so the fixed-sequence procedure on top keeps
the family-wise error at delta, as with uniform audits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from labeling.schemas import Route, RouteReason, unit_hash
from labeling.threshold_procedures import Tested, clopper_pearson_upper, min_accepted_at_half_alpha


def is_audited(sample_id: str, audit_rate: float) -> bool:
    """A deterministic draw: the same sample is always (or never) audited, on every rerun."""
    return unit_hash("audit", sample_id) < audit_rate


def drawn_for_audit(routes: Mapping[str, Route]) -> bool:
    """Whether routing recorded the audit draw for a sample, at any stage (``routes``: its routes by stage)."""
    return any(RouteReason.audit in route.reasons for route in routes.values())


@dataclass(frozen=True)
class AuditDesign:
    """Audit a sample with probability ``rate``, or ``focus_rate`` when its confidence is >= ``focus_above``."""

    rate: float
    focus_above: float | None = None
    focus_rate: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("audit_rate", self.rate), ("audit_focus_rate", self.focus_rate)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if (self.focus_above is None) != (self.focus_rate is None):
            raise ValueError("focused audits need both audit_focus_above (a confidence) and audit_focus_rate")

    @property
    def focused(self) -> bool:
        return self.focus_above is not None and self.focus_rate != self.rate

    def probability(self, confidence: float | None) -> float:
        """The inclusion probability of a sample with this labeler confidence (None: no label yet)."""
        if confidence is not None and self.focused and confidence >= self.focus_above:
            return float(self.focus_rate)
        return float(self.rate)

    def keeps(self, sample_id: str, confidence: float | None) -> bool:
        """Whether routing under this design audits the sample. One hash per sample against its
        probability: the draws are nested, so audits drawn under a richer design thin down to this one."""
        return is_audited(sample_id, self.probability(confidence))


def stratum_of(confidence: np.ndarray, focus_above: float | None) -> np.ndarray:
    """0 below the cut (or everything when there is none), 1 at or above it."""
    if focus_above is None:
        return np.zeros(confidence.shape, dtype=int)
    return (confidence >= focus_above).astype(int)


def stratum_counts(
    threshold: float, audit_conf: np.ndarray, audit_wrong: np.ndarray, stream_conf: np.ndarray, focus_above: float | None
) -> list[tuple[int, int, int]]:
    """(stream samples accepted, audits accepted, their errors) for each stratum ``threshold`` reaches."""
    a_stratum, s_stratum = stratum_of(audit_conf, focus_above), stratum_of(stream_conf, focus_above)
    accepted_a, accepted_s = audit_conf >= threshold, stream_conf >= threshold
    out = []
    for h in (0, 1):
        size = int((accepted_s & (s_stratum == h)).sum())
        if size:
            in_h = accepted_a & (a_stratum == h)
            out.append((size, int(in_h.sum()), int((in_h & audit_wrong).sum())))
    return out


def bound_from_counts(counts: list[tuple[int, int, int]], delta: float) -> float:
    """The stream-weighted mix of each stratum's Clopper-Pearson bound at delta / (strata reached)."""
    if not counts:
        return 1.0
    level = delta / len(counts)
    mass = sum(size for size, _, _ in counts)
    return sum(size * float(clopper_pearson_upper(k, n, level)) for size, n, k in counts) / mass


def stratified_upper_bound(
    threshold: float,
    audit_conf: np.ndarray,
    audit_wrong: np.ndarray,
    stream_conf: np.ndarray,
    focus_above: float | None,
    delta: float,
) -> tuple[float, int, int]:
    """(bound on the error rate of the stream samples ``threshold`` accepts, audits it accepts, their errors)."""
    counts = stratum_counts(threshold, audit_conf, audit_wrong, stream_conf, focus_above)
    return bound_from_counts(counts, delta), sum(n for _, n, _ in counts), sum(k for _, _, k in counts)


def labels_to_pass_next(
    audit_conf: np.ndarray,
    audit_wrong: np.ndarray,
    stream_conf: np.ndarray,
    focus_above: float | None,
    alpha: float,
    delta: float,
    after: float | None,
    step: float = 0.1,
    max_factor: int = 1000,
) -> tuple[int, float] | None:
    """(more audit labels, stream coverage) that would certify the first grid threshold looser than
    ``after`` (the strictest one when None), if every stratum kept its observed error rate and the
    new audits were drawn like the old; None when no factor up to ``max_factor`` would do."""
    for t in stream_grid(stream_conf, step):
        if after is not None and t >= after:
            continue
        counts = stratum_counts(float(t), audit_conf, audit_wrong, stream_conf, focus_above)
        if any(n < 20 for _, n, _ in counts):  # too few audits to extrapolate an error rate from
            continue
        if bound_from_counts([(size, n * max_factor, math.ceil(k * max_factor)) for size, n, k in counts], delta) > alpha:
            return None
        lo, hi = 1.0, float(max_factor)
        while hi - lo > 0.01:  # the bound falls as the audits grow: bisect on the growth factor
            mid = (lo + hi) / 2
            grown = [(size, math.floor(n * mid), math.ceil(k * mid - 1e-9)) for size, n, k in counts]
            lo, hi = (lo, mid) if bound_from_counts(grown, delta) <= alpha else (mid, hi)
        return max(1, math.ceil((hi - 1.0) * audit_conf.size)), float(np.mean(stream_conf >= t))
    return None


def stream_grid(stream_conf: np.ndarray, step: float) -> np.ndarray:
    """Candidate thresholds, strictest first: the confidence at each ``step`` of stream coverage
    (label-free: every scored sample's confidence is known, audited or not)."""
    if stream_conf.size == 0:
        return np.array([])
    c_sorted = np.sort(stream_conf)[::-1]
    ends = np.clip(np.ceil(np.arange(step, 1.0 + step / 2, step) * c_sorted.size).astype(int) - 1, 0, c_sorted.size - 1)
    return np.unique(c_sorted[ends])[::-1]


def focused_fixed_sequence(
    audit_conf: np.ndarray,
    audit_wrong: np.ndarray,
    stream_conf: np.ndarray,
    focus_above: float | None,
    alpha: float,
    delta: float,
    step: float = 0.1,
) -> tuple[list[Tested], Tested | None]:
    """Fixed-sequence testing on the stream's coverage grid, each threshold by its stratified bound.

    The sequence starts at the first threshold with enough audits for a labeler with error alpha/2
    to pass (a count of audits, not of their labels), then loosens while tests pass."""
    first_n = min_accepted_at_half_alpha(alpha, delta)
    tests: list[Tested] = []
    chosen = None
    for t in stream_grid(stream_conf, step):
        if int((audit_conf >= t).sum()) < first_n and not tests:
            continue
        ub, n, k = stratified_upper_bound(float(t), audit_conf, audit_wrong, stream_conf, focus_above, delta)
        test = Tested(threshold=float(t), n_accepted=n, errors=k, upper_bound=ub, passed=ub <= alpha)
        tests.append(test)
        if not test.passed:
            break
        chosen = test
    return tests, chosen
