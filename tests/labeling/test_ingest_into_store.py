"""labeling.ingest.ingest_file: a file into the store in chunks, without Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.errors import UserError
from labeling.ingest import ingest_file
from labeling.schemas import SampleState
from labeling.settings import IngestSettings


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_chunks_insert_quarantine_and_rerun_is_a_no_op(store, tmp_path: Path) -> None:
    rows = [{"sample_id": f"s{i}", "prompt": f"p{i}", "response_a": "a", "response_b": f"b{i}"} for i in range(7)]
    rows += ['{"truncated": ', {"sample_id": "same", "prompt": "p", "response_a": "x", "response_b": "x"}]
    path = _write(tmp_path / "in.jsonl", rows)
    seen = []
    counts = ingest_file(store, path, IngestSettings(batch_size=3), on_quarantine=seen.append)
    assert counts == {"read": 9, "inserted": 7, "unchanged": 0, "quarantined": 2}
    assert sorted(store.ids_in_state(SampleState.new)) == sorted(f"s{i}" for i in range(7))
    assert {r.field for r in seen} == {"(row)", "response_b"}
    again = ingest_file(store, path, IngestSettings(batch_size=3))
    assert again["inserted"] == 0 and again["unchanged"] == 7


def test_a_missing_file_is_a_user_error(store, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        ingest_file(store, tmp_path / "nope.jsonl", IngestSettings())


def test_ingest_holds_one_chunk_of_a_lazy_input(store, monkeypatch) -> None:
    from labeling.ingest import RawRecord, ingest_records

    produced = 0

    def rows(n: int):
        nonlocal produced
        for i in range(n):
            produced += 1
            data = {"sample_id": f"g{i}", "prompt": f"p{i}", "response_a": "a", "response_b": f"b{i}"}
            yield RawRecord("gen", i + 1, data=data)

    stored_before: list[tuple[int, int]] = []  # rows drawn from the input at each chunk's write, and the chunk's size
    real_add = store.add_samples

    def add_samples(batch, source):
        stored_before.append((produced, len(batch)))
        return real_add(batch, source)

    monkeypatch.setattr(store, "add_samples", add_samples)
    counts = ingest_records(store, rows(23), "gen", IngestSettings(batch_size=5))
    assert counts["inserted"] == 23
    # Each chunk is written before the next is drawn: never more than one chunk ahead of the store.
    assert stored_before == [(5, 5), (10, 5), (15, 5), (20, 5), (23, 3)]
