"""Per-label risk: ``p_wrong``, the estimated probability that a final label disagrees with a careful human.

Every label knows how it was made, and that says how far to trust it (issue 16):

- **judge** labels were accepted because the judge agreed with a confident AI labeler. Their risk is
  the judge stage's error among *accepted* samples at that judge confidence, measured on the random
  audit draw: audits that routing would have accepted (route reasons ``audit``, ``high_confidence``
  and ``judge_agrees``) and whose humans decided. Audits are binned by judge confidence into
  equal-mass bins of at least ``MIN_BIN`` samples; each bin's error is the Jeffreys posterior mean
  (errors + 0.5) / (n + 1), and bins are pooled (pool-adjacent-violators) until the error never
  rises with confidence. With no such audit yet, a label under a guaranteed judge threshold gets the
  guarantee's ``alpha`` (the stated bound on that error); without either it is unknown (null).
  Under focused audits (labeling/audit_design.py) the audits over-represent confident labeler
  outputs, so each audit is weighted by 1 / its inclusion probability (the design in force, from the
  caller's routing settings; audits drawn under a richer older design are thinned to it, as
  recalibration does) and each bin's error is the weighted (Hajek) rate, in units of audits.
- **human** and **human_over_judge** labels: annotators are taken to err independently at one rate
  eps. On overlap tasks two annotators disagree with probability D = 2 eps (1 - eps), so eps is
  read from the measured pairwise disagreement D. A label decided by k of n votes is wrong with
  posterior probability r^m / (1 + r^m), r = eps / (1 - eps), m = 2k - n (even prior on A and B):
  eps for one annotator, much less for a unanimous three. No overlap task yet: unknown (null).

Null means "no evidence", never zero: a noise-aware trainer treats it as a certain label (the plain loss).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from labeling.audit_design import AuditDesign
from labeling.records import read_active_thresholds
from labeling.recalibration import stale_sample_ids
from labeling.schemas import FinalLabel, LabelSource, RouteReason

if TYPE_CHECKING:
    from labeling.store import Store

MIN_BIN = 30  # fewest audits per confidence bin: below it one bin's error rate swings by +-0.1
MAX_BINS = 5
ACCEPTED_AUDIT_REASONS = {RouteReason.audit, RouteReason.high_confidence, RouteReason.judge_agrees}
HUMAN_SOURCES = (LabelSource.human, LabelSource.human_over_judge)


def jeffreys_rate(errors: float, n: int) -> float:
    """Posterior mean of an error rate under the Jeffreys prior Beta(1/2, 1/2): never exactly 0 or 1."""
    return (errors + 0.5) / (n + 1.0)


class JudgeRiskCurve(BaseModel):
    """Error among judge-accepted audits, by judge confidence: bin i covers [lower_edges[i], next edge)."""

    lower_edges: list[float]
    p_wrong: list[float]
    n: list[int]
    errors: list[float]  # weighted audits: n times the bin's weighted error rate
    mass: list[float] | None = None  # weighted audits: the sum of 1 / inclusion probability per bin
    weighted: bool = False

    def at(self, confidence: float | None) -> float:
        if confidence is None:  # no confidence recorded: the pooled rate over every bin
            mass = self.mass or self.n
            rate = sum(m * k / n for m, k, n in zip(mass, self.errors, self.n)) / sum(mass)
            return jeffreys_rate(rate * sum(self.n), sum(self.n))
        return self.p_wrong[max(bisect_right(self.lower_edges, confidence) - 1, 0)]


def fit_judge_risk(
    confidence: Sequence[float],
    wrong: Sequence[bool],
    min_bin: int = MIN_BIN,
    max_bins: int = MAX_BINS,
    weights: Sequence[float] | None = None,
) -> JudgeRiskCurve | None:
    """Binned, monotone (non-increasing in confidence) error of judge-accepted audits; None without audits.

    ``weights`` (1 / each audit's inclusion probability, for focused audits) make each bin's error
    the weighted rate; bins still hold equal numbers of audits."""
    conf = np.asarray(confidence, dtype=float)
    bad = np.asarray(wrong, dtype=bool)
    if conf.shape != bad.shape:
        raise ValueError(f"confidence has {conf.size} values but wrong has {bad.size}: pass one per audit")
    w = np.ones(conf.shape) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != conf.shape or not np.all(w > 0):
        raise ValueError(
            f"weights must be one positive value per audit: got {w.size} for {conf.size} audits, "
            f"smallest {w.min(initial=1)}; pass 1 / each audit's inclusion probability"
        )
    if conf.size == 0:
        return None
    order = np.argsort(conf, kind="stable")
    n_bins = max(1, min(max_bins, conf.size // min_bin))
    # [lower edge, upper edge, n, sum of weights, sum of weights of errors], ascending confidence
    chunks: list[list[float]] = []
    for chunk in np.array_split(order, n_bins):
        lo, hi = float(conf[chunk[0]]), float(conf[chunk[-1]])
        sums = [int(chunk.size), float(w[chunk].sum()), float(w[chunk][bad[chunk]].sum())]
        if chunks and lo == chunks[-1][1]:  # a confidence value never straddles two bins
            chunks[-1][1:] = [hi, *(a + b for a, b in zip(chunks[-1][2:], sums))]
        else:
            chunks.append([lo, hi, *sums])

    def audit_errors(block: list[float]) -> float:  # n times the weighted rate: the count itself when unweighted
        return block[1] * block[3] / block[2]

    blocks: list[list[float]] = []  # [lower edge, n, sum of weights, sum of weights of errors]
    for lo, _hi, *sums in chunks:
        blocks.append([lo, *sums])
        # Pool adjacent violators: a more confident bin may not be riskier than a less confident one.
        while len(blocks) > 1 and jeffreys_rate(audit_errors(blocks[-1]), int(blocks[-1][1])) > jeffreys_rate(
            audit_errors(blocks[-2]), int(blocks[-2][1])
        ):
            last = blocks.pop()
            blocks[-1][1:] = [a + b for a, b in zip(blocks[-1][1:], last[1:])]
    errors = [audit_errors(b) if weights is not None else round(audit_errors(b)) for b in blocks]
    return JudgeRiskCurve(
        lower_edges=[b[0] for b in blocks],
        p_wrong=[jeffreys_rate(k, int(b[1])) for k, b in zip(errors, blocks)],
        n=[int(b[1]) for b in blocks],
        errors=errors,
        mass=[b[2] for b in blocks] if weights is not None else None,
        weighted=weights is not None,
    )


class AnnotatorRisk(BaseModel):
    """One annotator's error rate, read from pairwise disagreement on overlap tasks."""

    n_units: int
    n_pairs: int
    disagreements: int
    error_rate: float  # eps

    def majority_p_wrong(self, n_votes: int, top_count: int) -> float:
        """P(the k-of-n majority is wrong) under independent errors at eps and an even prior."""
        margin = 2 * top_count - n_votes
        if margin <= 0:
            return 0.5
        eps = min(max(self.error_rate, 1e-9), 0.5)
        r = eps / (1.0 - eps)
        return r**margin / (1.0 + r**margin)


def annotator_risk(units: Sequence[Sequence[str]]) -> AnnotatorRisk | None:
    """eps from the A/B votes of each overlap unit (ties are not a side and are left out); None without pairs."""
    n_units = n_pairs = disagreements = 0
    for votes in units:
        sides = [v for v in votes if v in ("A", "B")]
        if len(sides) < 2:
            continue
        a = sides.count("A")
        n_units += 1
        n_pairs += len(sides) * (len(sides) - 1) // 2
        disagreements += a * (len(sides) - a)
    if n_pairs == 0:
        return None
    d = jeffreys_rate(disagreements, n_pairs)
    # D = 2 eps (1 - eps), solved for the root below 1/2; D >= 1/2 means annotators are no better than chance.
    eps = 0.5 if d >= 0.5 else (1.0 - math.sqrt(1.0 - 2.0 * d)) / 2.0
    return AnnotatorRisk(n_units=n_units, n_pairs=n_pairs, disagreements=disagreements, error_rate=eps)


class LabelRisk(BaseModel):
    """The fitted estimates; ``p_wrong(label)`` applies them to one final label."""

    judge: JudgeRiskCurve | None = None
    judge_bound: float | None = None  # alpha of the judge guarantee in force, used while no audit is accepted
    annotator: AnnotatorRisk | None = None

    def p_wrong(self, label: FinalLabel) -> float | None:
        if label.source == LabelSource.judge:
            if self.judge is not None:
                return round(self.judge.at(label.confidence), 6)
            return self.judge_bound
        if self.annotator is None or label.n_annotators < 1:
            return None
        # Human confidence is the majority's share of the votes (labeling.merge).
        top = round((label.confidence if label.confidence is not None else 1.0) * label.n_annotators)
        return round(self.annotator.majority_p_wrong(label.n_annotators, top), 6)

    def card_section(self) -> str:
        """Markdown for the dataset card: each estimate and the assumptions behind it."""
        if self.judge is not None:
            rows = "\n".join(
                f"| judge confidence >= {edge:.3f} | {n} | {k:.4g} | {p:.4f} |"
                for edge, n, k, p in zip(self.judge.lower_edges, self.judge.n, self.judge.errors, self.judge.p_wrong)
            )
            judge = f"| judge labels | audits | disagreements | p_wrong |\n|---|---|---|---|\n{rows}"
            if self.judge.weighted:
                judge += (
                    "\n\nAudits were focused (inclusion probability by labeler confidence): each audit is weighted "
                    "by 1 / its probability, and disagreements are the weighted rate times the audits."
                )
        elif self.judge_bound is not None:
            judge = (
                f"No accepted audit yet: judge labels carry the guarantee's bound, p_wrong = alpha = {self.judge_bound}."
            )
        else:
            judge = "No accepted audit and no guaranteed judge threshold yet: judge labels have p_wrong = null."
        if self.annotator is not None:
            a = self.annotator
            human = (
                f"{a.disagreements} of {a.n_pairs} annotator pairs disagreed on {a.n_units} overlap tasks: "
                f"one annotator's error eps = {a.error_rate:.4f}; a k-of-n majority has p_wrong = "
                "r^m / (1 + r^m), r = eps / (1 - eps), m = 2k - n."
            )
        else:
            human = "No overlap task (2+ annotators) yet: human labels have p_wrong = null."
        return f"""## Label risk (`p_wrong`)

`p_wrong` estimates the probability that a row's label disagrees with a careful human. It is
optional: a consumer may ignore it; null means no evidence yet (not zero).

{judge}

{human}

Assumptions: audits are a random draw of the stream, so the judge-accepted audits stand for every
judge-accepted label (error rates are Jeffreys posterior means, binned by judge confidence and
made non-increasing in it); annotators err independently, at one shared rate, with no side
favoured a priori; humans who agree with each other are taken to be right.
"""


def _latest_votes(labels) -> list[str]:
    """One vote per annotator, their latest non-cancelled annotation (as labeling.merge counts them)."""
    latest = {}
    for hl in labels:
        if not hl.cancelled:
            latest[hl.annotator] = hl.choice
    return list(latest.values())


def audit_design_of(routing: Mapping[str, Any]) -> AuditDesign | None:
    """The focused audit design a snapshot's routing record names (tasks/publish.py writes its keys), else None."""
    if routing.get("audit_focus_above") is None or routing.get("audit_focus_rate") is None:
        return None
    rate, above, focus_rate = (float(routing[k]) for k in ("audit_rate", "audit_focus_above", "audit_focus_rate"))
    return AuditDesign(rate, above, focus_rate)


def estimate_label_risk(store: Store, design: AuditDesign | None = None) -> LabelRisk:
    """Fit the judge and annotator estimates from what the store holds (audits, overlap votes, thresholds).

    ``design`` is the audit design in force (routing settings); a focused one weights each audit by
    1 / its inclusion probability at the labeler's confidence."""
    finals = store.get_final_labels(sources=HUMAN_SOURCES)  # judge labels grow with every batch: not read
    human_ids = sorted(finals)
    routes, verdicts = store.get_routes(human_ids), store.get_verdicts(human_ids)
    stale = stale_sample_ids(store)  # audits from before a drift alarm describe an older stream
    focused = design is not None and design.focused
    labeler = store.get_ai_labels(human_ids) if focused else {}
    conf, wrong, weights = [], [], []
    for sid in human_ids:
        reasons = {r for route in routes.get(sid, {}).values() for r in route.reasons}
        verdict, human = verdicts.get(sid), finals[sid].preferred
        if sid in stale or not ACCEPTED_AUDIT_REASONS <= reasons or verdict is None or verdict.preferred is None:
            continue
        if human not in ("A", "B"):
            continue
        if focused:
            ai = labeler.get(sid)
            confidence = ai.confidence if ai is not None else None
            if not design.keeps(sid, confidence):  # drawn under a richer older design: thinned, as recalibration does
                continue
            weights.append(1.0 / design.probability(confidence))
        conf.append(verdict.confidence)
        wrong.append(verdict.preferred != human)
    thresholds = read_active_thresholds(store)
    bound = thresholds.alpha if thresholds is not None and thresholds.judge_threshold is not None else None
    units = [_latest_votes(labels) for labels in store.get_human_labels(human_ids).values()]
    judge = fit_judge_risk(conf, wrong, weights=weights if focused else None)
    return LabelRisk(judge=judge, judge_bound=bound, annotator=annotator_risk(units))
