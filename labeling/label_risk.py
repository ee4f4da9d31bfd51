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
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from labeling.records import read_active_thresholds
from labeling.recalibration import stale_sample_ids
from labeling.schemas import FinalLabel, LabelSource, RouteReason

if TYPE_CHECKING:
    from labeling.store import Store

MIN_BIN = 30  # fewest audits per confidence bin: below it one bin's error rate swings by +-0.1
MAX_BINS = 5
ACCEPTED_AUDIT_REASONS = {RouteReason.audit, RouteReason.high_confidence, RouteReason.judge_agrees}
HUMAN_SOURCES = (LabelSource.human, LabelSource.human_over_judge)


def jeffreys_rate(errors: int, n: int) -> float:
    """Posterior mean of an error rate under the Jeffreys prior Beta(1/2, 1/2): never exactly 0 or 1."""
    return (errors + 0.5) / (n + 1.0)


class JudgeRiskCurve(BaseModel):
    """Error among judge-accepted audits, by judge confidence: bin i covers [lower_edges[i], next edge)."""

    lower_edges: list[float]
    p_wrong: list[float]
    n: list[int]
    errors: list[int]

    def at(self, confidence: float | None) -> float:
        if confidence is None:  # no confidence recorded: the pooled rate over every bin
            return jeffreys_rate(sum(self.errors), sum(self.n))
        return self.p_wrong[max(bisect_right(self.lower_edges, confidence) - 1, 0)]


def fit_judge_risk(
    confidence: Sequence[float], wrong: Sequence[bool], min_bin: int = MIN_BIN, max_bins: int = MAX_BINS
) -> JudgeRiskCurve | None:
    """Binned, monotone (non-increasing in confidence) error of judge-accepted audits; None without audits."""
    conf = np.asarray(confidence, dtype=float)
    bad = np.asarray(wrong, dtype=bool)
    if conf.shape != bad.shape:
        raise ValueError(f"confidence has {conf.size} values but wrong has {bad.size}: pass one per audit")
    if conf.size == 0:
        return None
    order = np.argsort(conf, kind="stable")
    n_bins = max(1, min(max_bins, conf.size // min_bin))
    chunks: list[list[float]] = []  # [lower edge, upper edge, n, errors], ascending confidence
    for chunk in np.array_split(order, n_bins):
        lo, hi, n, k = float(conf[chunk[0]]), float(conf[chunk[-1]]), int(chunk.size), int(bad[chunk].sum())
        if chunks and lo == chunks[-1][1]:  # a confidence value never straddles two bins
            chunks[-1][1:] = [hi, chunks[-1][2] + n, chunks[-1][3] + k]
        else:
            chunks.append([lo, hi, n, k])
    blocks: list[list[float]] = []  # [lower edge, n, errors]
    for lo, _hi, n, k in chunks:
        blocks.append([lo, n, k])
        # Pool adjacent violators: a more confident bin may not be riskier than a less confident one.
        while len(blocks) > 1 and jeffreys_rate(blocks[-1][2], blocks[-1][1]) > jeffreys_rate(
            blocks[-2][2], blocks[-2][1]
        ):
            _, n_last, k_last = blocks.pop()
            blocks[-1][1] += n_last
            blocks[-1][2] += k_last
    return JudgeRiskCurve(
        lower_edges=[b[0] for b in blocks],
        p_wrong=[jeffreys_rate(int(b[2]), int(b[1])) for b in blocks],
        n=[int(b[1]) for b in blocks],
        errors=[int(b[2]) for b in blocks],
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
                f"| judge confidence >= {edge:.3f} | {n} | {k} | {p:.4f} |"
                for edge, n, k, p in zip(self.judge.lower_edges, self.judge.n, self.judge.errors, self.judge.p_wrong)
            )
            judge = f"| judge labels | audits | disagreements | p_wrong |\n|---|---|---|---|\n{rows}"
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


def estimate_label_risk(store: Store) -> LabelRisk:
    """Fit the judge and annotator estimates from what the store holds (audits, overlap votes, thresholds)."""
    finals = store.get_final_labels(sources=HUMAN_SOURCES)  # judge labels grow with every batch: not read
    human_ids = sorted(s for s, f in finals.items() if f.source in HUMAN_SOURCES)
    routes, verdicts = store.get_routes(human_ids), store.get_verdicts(human_ids)
    stale = stale_sample_ids(store)  # audits from before a drift alarm describe an older stream
    conf, wrong = [], []
    for sid in human_ids:
        reasons = {r for route in routes.get(sid, {}).values() for r in route.reasons}
        verdict, human = verdicts.get(sid), finals[sid].preferred
        if sid in stale or not ACCEPTED_AUDIT_REASONS <= reasons or verdict is None or verdict.preferred is None:
            continue
        if human in ("A", "B"):
            conf.append(verdict.confidence)
            wrong.append(verdict.preferred != human)
    thresholds = read_active_thresholds(store)
    bound = thresholds.alpha if thresholds is not None and thresholds.judge_threshold is not None else None
    units = [_latest_votes(labels) for labels in store.get_human_labels(human_ids).values()]
    return LabelRisk(judge=fit_judge_risk(conf, wrong), judge_bound=bound, annotator=annotator_risk(units))
