"""Merging judge and human answers into one final label per sample (pure functions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from labeling.schemas import AILabel, FinalLabel, HumanLabel, JudgeVerdict, LabelSource


def judge_final_label(label: AILabel, verdict: JudgeVerdict) -> FinalLabel:
    """The label accepted when the judge agrees with the AI labeler (routing decided that)."""
    if verdict.preferred is None:
        raise ValueError(f"sample {verdict.sample_id!r}: a judge verdict with no preference cannot become a label")
    return FinalLabel(
        sample_id=verdict.sample_id,
        preferred=verdict.preferred,
        source=LabelSource.judge,
        labeler_version=label.labeler_version,
        judge_version=verdict.version,
        confidence=verdict.confidence,
        n_annotators=0,
    )


Outcome = Literal["decided", "tie", "needs_more", "waiting", "no_votes"]


@dataclass(frozen=True)
class HumanResolution:
    sample_id: str
    outcome: Outcome
    final: FinalLabel | None
    n_annotators: int
    votes: dict[str, int]


def resolve_human_labels(
    sample_id: str,
    labels: Sequence[HumanLabel],
    *,
    ai_label: AILabel | None,
    verdict: JudgeVerdict | None,
    max_annotators: int,
    wanted: int = 1,
) -> HumanResolution:
    """Majority vote over non-cancelled annotations, once ``wanted`` annotators have answered.

    A split vote (or a majority for "tie") asks for another annotator until ``max_annotators``
    have answered; after that the tie is final and kept as such (exports leave it out).
    Skipped/cancelled annotations never vote.
    """
    # One vote per annotator: their latest annotation counts.
    latest: dict[str, HumanLabel] = {}
    for hl in labels:
        if hl.sample_id != sample_id or hl.cancelled:
            continue
        latest[hl.annotator] = hl
    votes = Counter(hl.choice for hl in latest.values())
    n = len(latest)
    if n == 0:
        return HumanResolution(sample_id, "no_votes", None, 0, {})
    if n < wanted:
        return HumanResolution(sample_id, "waiting", None, n, dict(votes))
    ranked = votes.most_common()
    top_choice, top_count = ranked[0]
    split = len(ranked) > 1 and ranked[1][1] == top_count
    if split or top_choice == "tie":
        if n < max_annotators:
            return HumanResolution(sample_id, "needs_more", None, n, dict(votes))
        preferred = "tie"
    else:
        preferred = top_choice
    overrides_judge = verdict is not None and verdict.preferred is not None and verdict.preferred != preferred
    final = FinalLabel(
        sample_id=sample_id,
        preferred=preferred,
        source=LabelSource.human_over_judge if overrides_judge else LabelSource.human,
        labeler_version=ai_label.labeler_version if ai_label else None,
        judge_version=verdict.version if verdict else None,
        confidence=top_count / n,  # annotator agreement, not a model probability
        n_annotators=n,
    )
    return HumanResolution(sample_id, "tie" if preferred == "tie" else "decided", final, n, dict(votes))


def resolve_human_reviews(
    store, sample_ids: Sequence[str], max_annotators: int, wanted: Callable[[str], int] = lambda _sid: 1
) -> list[HumanResolution]:
    """``resolve_human_labels`` for each sample, from the stored annotations, AI label and verdict.

    ``wanted(sample_id)`` is how many annotators a sample waits for (Label Studio's overlap).
    """
    humans = store.get_human_labels(sample_ids)
    ai_labels, verdicts = store.get_ai_labels(sample_ids), store.get_verdicts(sample_ids)
    return [
        resolve_human_labels(
            sid, humans.get(sid, []), ai_label=ai_labels.get(sid), verdict=verdicts.get(sid),
            max_annotators=max_annotators, wanted=wanted(sid),
        )
        for sid in sample_ids
    ]  # fmt: skip


def finalize_human_reviews(store, sample_ids: Sequence[str], max_annotators: int) -> dict[str, Outcome]:
    """Resolve stored human labels into final labels for the given samples, in one transaction.

    Idempotent: the same annotations always give the same final label, and a changed
    annotation replaces the earlier final label.
    """
    resolutions = resolve_human_reviews(store, sample_ids, max_annotators)
    store.record_final_labels([r.final for r in resolutions if r.final is not None])
    return {r.sample_id: r.outcome for r in resolutions}
