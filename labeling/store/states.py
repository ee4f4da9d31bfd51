"""The per-sample state machine: which moves are allowed, and the one function that makes them."""

from __future__ import annotations

from sqlalchemy import Connection, update

from labeling.schemas import SampleState
from labeling.store.sql import chunks, now, select_in
from labeling.store.tables import samples

S = SampleState
ALLOWED_TRANSITIONS: dict[SampleState, frozenset[SampleState]] = {
    S.new: frozenset({S.ai_labeled, S.human_pending, S.quarantined}),  # human_pending: cold start
    S.ai_labeled: frozenset({S.judge_pending, S.human_pending}),
    S.judge_pending: frozenset({S.human_pending, S.labeled}),
    S.human_pending: frozenset({S.labeled}),
    S.labeled: frozenset({S.labeled}),
    S.quarantined: frozenset(),
}
# Pipeline order: a write aiming at an earlier state than the current one is a re-run, not an error.
_RANK = {"new": 0, "ai_labeled": 1, "judge_pending": 2, "human_pending": 3, "labeled": 4}
_ALLOWED_VALUES = {(a.value, b.value) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets}


class InvalidTransition(ValueError):
    """A write would move a sample along an edge that is not in ALLOWED_TRANSITIONS."""


class UnknownSampleError(LookupError):
    """A write or read named a sample_id that was never added with ``add_samples``."""


def unknown_samples(missing: list[str]) -> UnknownSampleError:
    return UnknownSampleError(
        f"unknown sample_id(s) {missing[:5]} ({len(missing)} in all): add them with add_samples first"
    )


def advance(conn: Connection, targets: dict[str, SampleState]) -> None:
    """Move samples to their target states: forward along ALLOWED_TRANSITIONS, backwards = no-op."""
    current = dict(select_in(conn, [samples.c.sample_id, samples.c.state], samples.c.sample_id, list(targets), True))
    missing = [i for i in targets if i not in current]
    if missing:
        raise unknown_samples(missing)
    moves: dict[str, list[str]] = {}
    values = {t: t.value for t in set(targets.values())}  # enum attribute access is slow per row
    for sample_id, target in targets.items():
        state, goal = current[sample_id], values[target]
        if state == goal:
            continue
        if (state, goal) in _ALLOWED_VALUES:
            moves.setdefault(goal, []).append(sample_id)
        elif not (state in _RANK and goal in _RANK and _RANK[goal] < _RANK[state]):
            allowed = sorted(s.value for s in ALLOWED_TRANSITIONS[SampleState(state)]) or "nothing"
            raise InvalidTransition(
                f"sample {sample_id!r} cannot go from {state!r} to {goal!r}: "
                f"{state!r} may only go to {allowed}; record the missing step first"
            )
    stamp = now()
    for target_value, ids in moves.items():
        for chunk in chunks(ids):
            where = samples.c.sample_id.in_(chunk) & (samples.c.state != target_value)
            conn.execute(update(samples).where(where).values(state=target_value, updated_at=stamp))
