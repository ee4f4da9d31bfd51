"""Confidence routing: pure functions, no I/O.

Two decisions per sample:
1. after the AI labeler: judge, human, or both;
2. after the judge: accept the judge's label, or escalate to a human.

Every route records its reasons, so the store, Label Studio and the dataset card can say
why a sample went where it went.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from labeling.audit_design import AuditDesign, is_audited
from labeling.guarantee import ActiveThresholds
from labeling.schemas import AILabel, JudgeVerdict, Route, RouteReason
from labeling.settings import RoutingSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingPolicy:
    """Thresholds in force for one run.

    ``high``/``low`` come from the settings; once a guaranteed calibration exists
    (labeling.guarantee), ``high`` is its labeler threshold and ``judge_threshold`` its judge
    threshold. ``high=None`` means no threshold qualified: nothing is auto-accepted.
    """

    high: float | None
    low: float
    audit_rate: float
    judge_threshold: float | None = None
    audit_focus_above: float | None = None
    audit_focus_rate: float | None = None

    def __post_init__(self) -> None:
        if self.high is not None and self.low > self.high:
            raise ValueError(f"routing low ({self.low}) must not exceed high ({self.high})")
        self.audit_design  # validates the audit rates

    @property
    def audit_design(self) -> AuditDesign:
        return AuditDesign(self.audit_rate, self.audit_focus_above, self.audit_focus_rate)


def policy_in_force(
    routing: RoutingSettings, active: ActiveThresholds | None, labeler_version: str | None = None
) -> RoutingPolicy:
    """The thresholds that apply to labels of ``labeler_version``: the active guaranteed calibration
    when it was fitted on that labeler, else the hand-set ``routing.high``/``routing.low``.

    ``labeler_version=None`` (no labeler: a cold start, or a caller that routes no labels, such as
    the snapshot's record of thresholds) takes the active calibration whatever it was fitted on.
    """
    if active is not None and labeler_version and active.labeler_version not in (None, labeler_version):
        # A calibration says nothing about another labeler's confidences (e.g. after a promotion).
        log.warning(
            "active thresholds were calibrated for labeler %s, not %s: using the configured thresholds "
            "until the recalibrate flow has run", active.labeler_version, labeler_version,
        )  # fmt: skip
        active = None
    audits = {
        "audit_rate": routing.audit_rate,
        "audit_focus_above": routing.audit_focus_above,
        "audit_focus_rate": routing.audit_focus_rate,
    }
    if active is None:
        return RoutingPolicy(high=routing.high, low=routing.low, **audits)
    high = active.labeler_threshold
    return RoutingPolicy(
        high=high,
        low=min(routing.low, high) if high is not None else routing.low,
        judge_threshold=active.judge_threshold,
        **audits,
    )


def audit_reasons(sample_id: str, label: AILabel | None, design: AuditDesign) -> list[RouteReason]:
    """[audit] or []. The inclusion probability depends on the confidence only, so audits stay a
    uniform sample within each stratum; the draws are nested (one hash against the probability), so
    recalibration can thin audits drawn under a richer design down to the design in force."""
    return [RouteReason.audit] if design.keeps(sample_id, label and label.confidence) else []


def route_after_labeler(sample_id: str, label: AILabel | None, policy: RoutingPolicy) -> Route:
    audit = audit_reasons(sample_id, label, policy.audit_design)
    if label is None:
        return Route(sample_id=sample_id, to_judge=False, to_human=True, reasons=[RouteReason.cold_start, *audit])
    confidence = label.confidence
    if policy.high is not None and confidence >= policy.high:
        # Audited samples still see the judge, so the judge stage can be calibrated too.
        return Route(
            sample_id=sample_id, to_judge=True, to_human=bool(audit), reasons=[RouteReason.high_confidence, *audit]
        )
    if confidence < policy.low:
        return Route(sample_id=sample_id, to_judge=False, to_human=True, reasons=[RouteReason.low_confidence, *audit])
    return Route(sample_id=sample_id, to_judge=True, to_human=True, reasons=[RouteReason.mid_confidence, *audit])


def route_after_judge(
    first: Route,
    label: AILabel,
    verdict: JudgeVerdict,
    policy: RoutingPolicy,
    injection_flags: list[str] | tuple[str, ...] = (),
) -> Route:
    """Accept the judge's label only if nothing about it calls for a human."""
    reasons = list(first.reasons)
    escalate: list[RouteReason] = []
    if verdict.parse_error is not None:
        escalate.append(RouteReason.judge_unparseable)
    elif not verdict.swap_consistent:
        escalate.append(RouteReason.swap_inconsistent)
    elif verdict.preferred != label.preferred:
        escalate.append(RouteReason.judge_disagrees)
    elif policy.judge_threshold is not None and (verdict.confidence or 0.0) < policy.judge_threshold:
        escalate.append(RouteReason.judge_low_confidence)
    if injection_flags:
        escalate.append(RouteReason.possible_injection)
    if not escalate and not first.to_human:
        return Route(
            sample_id=first.sample_id,
            to_judge=True,
            to_human=False,
            accept_judge=True,
            reasons=[*reasons, RouteReason.judge_agrees],
        )
    if not escalate:
        escalate.append(RouteReason.judge_agrees)  # a human looks anyway (mid confidence or audit)
    return Route(sample_id=first.sample_id, to_judge=True, to_human=True, reasons=[*reasons, *escalate])
