"""The promotion gate: a reward model replaces the AI labeler only if it is measurably better.

Both are scored the same way, through the AILabeler interface, on the same held-out pairs (the
snapshot's hash-of-sample_id split, never trained on). Cold start (no labeler yet) counts as
chance, 0.5. A candidate passes when ``candidate >= baseline + settings.training.gate_margin``.

Promotion writes ``labeling.records.ActiveLabeler`` (built by ``promotion_record``), which
``models.factory.build_labeler`` reads before falling back to ``settings.labeler``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from labeling.records import ActiveLabeler
from labeling.schemas import Choice, Sample, unit_hash
from models.base import AILabeler

CHANCE_ACCURACY = 0.5  # a labeler that does not exist is as good as a coin


class GateDecision(BaseModel):
    passed: bool
    candidate_accuracy: float
    baseline_accuracy: float
    baseline_version: str | None
    margin: float
    n_pairs: int
    reason: str


def heldout_samples(rows) -> tuple[list[Sample], list[Choice]]:
    """Held-out pairs as Samples, chosen placed at A or B by a hash of sample_id (no position hint)."""
    samples, answers = [], []
    for prompt, chosen, rejected, sample_id in zip(rows["prompt"], rows["chosen"], rows["rejected"], rows["sample_id"], strict=True):
        chosen_first = unit_hash("gate-order", sample_id) < 0.5
        a, b = (chosen, rejected) if chosen_first else (rejected, chosen)
        samples.append(Sample(sample_id=sample_id, prompt=prompt, response_a=a, response_b=b))
        answers.append("A" if chosen_first else "B")
    return samples, answers


def labeler_accuracy(labeler: AILabeler | None, samples: Sequence[Sample], answers: Sequence[Choice]) -> float:
    if labeler is None:
        return CHANCE_ACCURACY
    labels = labeler.label(samples)
    return sum(label.preferred == answer for label, answer in zip(labels, answers, strict=True)) / len(answers)


def decide(candidate: AILabeler, baseline: AILabeler | None, rows, margin: float) -> GateDecision:
    samples, answers = heldout_samples(rows)
    if not samples:
        raise ValueError("gate got no held-out pairs: the snapshot split left nothing to compare on")
    cand = labeler_accuracy(candidate, samples, answers)
    base = labeler_accuracy(baseline, samples, answers)
    passed = cand >= base + margin
    name = baseline.version if baseline is not None else "none (cold start: chance)"
    verb = "beats" if passed else "does not beat"
    return GateDecision(
        passed=passed,
        candidate_accuracy=cand,
        baseline_accuracy=base,
        baseline_version=baseline.version if baseline is not None else None,
        margin=margin,
        n_pairs=len(samples),
        reason=f"held-out accuracy {cand:.3f} {verb} labeler {name} at {base:.3f} + margin {margin:.3f} on {len(samples)} pairs",
    )


def promotion_record(version: str, model_path: str, decision: GateDecision) -> ActiveLabeler:
    """The active-labeler record a passed gate writes; build_labeler reads backend and model_path."""
    return ActiveLabeler(
        backend="reward_model",
        model_path=model_path,
        version=version,
        heldout_accuracy=decision.candidate_accuracy,
        replaced=decision.baseline_version,
        promoted_at=datetime.now(UTC).isoformat(),
    )


def gate_candidate(
    candidate: AILabeler,
    baseline: AILabeler | None,
    rows,
    margin: float,
    mark: Callable[[str, str, dict], None],
    promote: Callable[[ActiveLabeler], None],
    model_path: str,
    version: str,
) -> GateDecision:
    """Decide, then record the outcome: ``mark(status, reason, metrics)`` in the registry and, when the
    candidate passes, ``promote(record)`` so that the next build_labeler returns it.

    Both models are unloaded afterwards whatever happens: the gate runs on a training worker
    whose memory the next stage needs.
    """
    try:
        decision = decide(candidate, baseline, rows, margin)
    finally:
        candidate.unload()
        if baseline is not None:
            baseline.unload()
    mark("promoted" if decision.passed else "rejected", decision.reason, {"gate": decision.model_dump()})
    if decision.passed:
        promote(promotion_record(version, model_path, decision))
    return decision
