"""Drift: audits show auto-accepted labels disagreeing with humans more than alpha allows.

Audit samples are a random sample of the stream, so the audits that fall in the
auto-accept region estimate its error rate without bias. Under the guarantee that rate is
<= alpha; a one-sided exact binomial test of H0: error rate <= alpha against the audits
gathered since the active calibration tells us when that no longer holds (the labeler,
the judge or the stream changed). On an alarm the active thresholds are tightened at once
to "route everything onward" until ``recalibrate`` fits new ones
(``labeling.recalibration.check_routing_drift``; the alarm is a ``labeling.records.DriftAlarm``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

# The alarm's false-positive rate per check. Lower than a typical delta because the check runs
# after every audit harvest, and a false alarm costs a full round of human labels.
DEFAULT_DRIFT_LEVEL = 0.01


class DriftResult(BaseModel):
    n: int
    errors: int
    alpha: float
    level: float
    p_value: float
    fired: bool
    message: str

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else 0.0


def check_drift(accepted_correct: Sequence[bool], alpha: float, level: float = DEFAULT_DRIFT_LEVEL) -> DriftResult:
    """Exact one-sided binomial test on audits of samples the active thresholds auto-accept."""
    n = len(accepted_correct)
    errors = sum(1 for ok in accepted_correct if not ok)
    if n == 0:
        return DriftResult(
            n=0, errors=0, alpha=alpha, level=level, p_value=1.0, fired=False,
            message="no audits of auto-accepted samples since the last calibration: nothing to test",
        )  # fmt: skip
    from scipy.stats import binomtest  # here, not at the top: scipy.stats costs ~1.3 s of every start-up

    p_value = float(binomtest(errors, n, alpha, alternative="greater").pvalue)
    fired = p_value < level
    verdict = "DRIFT" if fired else "no drift"
    message = (
        f"{verdict}: {errors}/{n} audited auto-accepted samples disagree with humans "
        f"({errors / n:.1%} vs alpha {alpha:.0%}; one-sided exact binomial p = {p_value:.2g}, level {level})"
    )
    return DriftResult(n=n, errors=errors, alpha=alpha, level=level, p_value=p_value, fired=fired, message=message)


def first_alarm(
    stream_correct: Sequence[bool], alpha: float, batch_size: int, level: float = DEFAULT_DRIFT_LEVEL
) -> int | None:
    """Replay audits of auto-accepted samples in arrival order, as the recalibrate flow sees
    them: each run tests the audits that arrived since the previous run (then refits). Returns
    the index of the first batch that raises an alarm, or None."""
    for b, start in enumerate(range(0, len(stream_correct), batch_size)):
        if check_drift(stream_correct[start : start + batch_size], alpha, level).fired:
            return b
    return None
