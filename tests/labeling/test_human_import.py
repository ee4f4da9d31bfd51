"""labeling/human_import.py: the export file, the reviewable rule, re-imports and plain-word ties, without Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.human_import import (
    HEADER_KEY,
    explain_needs_more,
    import_human_labels,
    read_human_file,
    split_reviewable,
    split_unchanged,
    write_pending,
)
from labeling.ingest import load_records, parse_records
from labeling.schemas import HumanLabel, Route, RouteReason, SampleState
from labeling.settings import IngestSettings
from labeling.store import Store
from labeling.synthetic import generate, write_jsonl


@pytest.fixture
def pending_store(tmp_path: Path) -> tuple[Store, list]:
    """Eight samples awaiting human review (a cold start), two of them new-only."""
    samples, _ = parse_records(load_records(write_jsonl(generate(10, seed=3), tmp_path / "in.jsonl")), IngestSettings())
    st = Store(f"sqlite:///{tmp_path / 'store.db'}")
    st.add_samples(samples, source="test")
    st.record_routes([Route(sample_id=s.sample_id, to_judge=False, to_human=True, reasons=[RouteReason.cold_start])
                      for s in samples[:8]], stage="labeler")
    return st, samples


def _answer(path: Path, choices: dict[str, str], annotator: str = "ann1") -> Path:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows[1:]:
        if row["sample_id"] in choices:
            row.update(choice=choices[row["sample_id"]], annotator=annotator)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_export_keeps_the_stored_ab_order_and_says_so(pending_store, tmp_path: Path) -> None:
    st, samples = pending_store
    ids = st.ids_in_state(SampleState.human_pending)
    out = tmp_path / "pending.jsonl"
    assert write_pending(st.get_samples(ids), out) == 8
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert "stored order" in rows[0][HEADER_KEY]
    by_id = {s.sample_id: s for s in samples}
    swapped = 0
    for row in rows[1:]:
        stored = by_id[row["sample_id"]]
        assert (row["response_a"], row["response_b"]) == (stored.response_a, stored.response_b)
        swapped += stored.metadata["ab_swapped"]
    assert 0 < swapped < 8, "the fixture should hold both shuffled and unshuffled samples"
    unread = read_human_file(out)
    assert unread.labels == [] and unread.problems == [] and unread.unanswered == 8


def test_import_round_trip_then_unchanged(pending_store, tmp_path: Path) -> None:
    st, _ = pending_store
    ids = st.ids_in_state(SampleState.human_pending)
    out = tmp_path / "pending.jsonl"
    write_pending(st.get_samples(ids), out)
    _answer(out, {ids[0]: "A", ids[1]: "B"})
    first = import_human_labels(st, out, max_annotators=3)
    assert (first.imported, first.unchanged, first.unanswered, dict(first.outcomes)) == (2, 0, 6, {"decided": 2})
    finals = st.get_final_labels([ids[0], ids[1]])
    assert finals[ids[0]].preferred == "A" and finals[ids[1]].preferred == "B"
    again = import_human_labels(st, out, max_annotators=3)
    assert (again.imported, again.unchanged, sum(again.outcomes.values())) == (0, 2, 0)
    assert len([hl for hls in st.get_human_labels(ids).values() for hl in hls]) == 2


def test_a_lone_tie_is_explained(pending_store, tmp_path: Path) -> None:
    st, _ = pending_store
    sid = st.ids_in_state(SampleState.human_pending)[0]
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"sample_id": sid, "choice": "tie"}) + "\n")
    report = import_human_labels(st, path, max_annotators=3)
    assert report.outcomes["needs_more"] == 1
    assert report.explanations[sid].startswith("1 of 1 annotator said tie; needs another annotator")


def test_explain_needs_more_names_the_votes() -> None:
    assert explain_needs_more({"A": 1, "tie": 1}, 3).startswith("1 of 2 annotators said tie; needs another annotator")
    assert explain_needs_more({"A": 1, "B": 1}, 3).startswith("2 annotators split: 1 said A, 1 said B; needs another")


def test_split_reviewable_names_why_a_label_is_refused() -> None:
    labels = [HumanLabel(sample_id=s, annotation_id=f"x-{s}", annotator="a", choice="A") for s in ("p", "q", "gone")]
    states = {"p": SampleState.human_pending, "q": SampleState.judge_pending}
    accepted, rejected = split_reviewable(labels, states, "f.jsonl")
    assert [hl.sample_id for hl in accepted] == ["p"]
    reasons = {r.sample_id: r.reason for r in rejected}
    assert "not awaiting human review" in reasons["q"] and "unknown sample id" in reasons["gone"]


def test_split_unchanged_counts_only_identical_labels() -> None:
    old = HumanLabel(sample_id="s", annotation_id="a1", annotator="x", choice="A")
    edited = old.model_copy(update={"choice": "B"})
    fresh, unchanged = split_unchanged([old, edited], {"s": [old]})
    assert fresh == [edited] and unchanged == 1


def test_bad_rows_are_rejected_with_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text('{"sample_id": "s1", "choice": "maybe"}\nnot json\n')
    result = read_human_file(path)
    assert [(p.row, p.field) for p in result.problems] == [(1, "choice"), (2, "(line)")]
