"""labeling/export.py: TRL-ready snapshots with stable ids and a dataset card."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from labeling.export import COLUMNS, export_snapshot, load_snapshot
from labeling.schemas import FinalLabel, LabelSource, Route, RouteReason
from labeling.store import Store
from tests.labeling.conftest import make_samples

ROUTING = {"high": 0.8, "low": 0.65, "audit_rate": 0.05}


def labeled_store(tmp_path: Path, n: int = 6) -> Store:
    st = Store(f"sqlite:///{tmp_path / 'juryflow.db'}")
    samples = make_samples(n, chat_every=3)
    st.add_samples(samples, "fixture")
    ids = [s.sample_id for s in samples]
    st.record_routes(
        [Route(sample_id=i, to_judge=False, to_human=True, reasons=[RouteReason.cold_start]) for i in ids], "labeler"
    )
    labels = [
        FinalLabel(sample_id=ids[0], preferred="A", source=LabelSource.judge, judge_version="j1", confidence=0.9),
        FinalLabel(sample_id=ids[1], preferred="B", source=LabelSource.human, n_annotators=1),
        FinalLabel(sample_id=ids[2], preferred="tie", source=LabelSource.human, n_annotators=2),
    ]
    st.record_final_labels(labels)
    return st


def test_snapshot_rows_columns_and_files(tmp_path: Path) -> None:
    st = labeled_store(tmp_path)
    snap = export_snapshot(st, tmp_path / "snaps", ROUTING)
    assert snap.path == tmp_path / "snaps" / snap.snapshot_id
    assert snap.n_rows == 2 and snap.counts_by_source == {"human": 1, "judge": 1}  # the tie is left out
    dataset = load_snapshot(snap.path)
    assert dataset.column_names == list(COLUMNS)
    rows = {r["sample_id"]: r for r in dataset}
    first, second = make_samples(2, chat_every=3)
    assert rows[first.sample_id]["prompt"] == first.prompt_text == "System: Be kind.\n\nHuman: question 0"
    assert (rows[first.sample_id]["chosen"], rows[first.sample_id]["rejected"]) == (first.response_a, first.response_b)
    assert (rows[second.sample_id]["chosen"], rows[second.sample_id]["rejected"]) == (
        second.response_b,
        second.response_a,
    )
    assert rows[first.sample_id]["confidence"] == 0.9 and rows[second.sample_id]["confidence"] is None
    assert pq.read_table(snap.path / "data.parquet").to_pylist() == dataset.to_list()
    card = (snap.path / "README.md").read_text(encoding="utf-8")
    assert "| judge | 1 |" in card and "| high | 0.8 |" in card and snap.created_at in card
    meta = json.loads((snap.path / "snapshot.json").read_text(encoding="utf-8"))
    assert meta["snapshot_id"] == snap.snapshot_id and meta["routing"] == ROUTING
    recorded = st.last_snapshot()
    assert recorded is not None and recorded["snapshot_id"] == snap.snapshot_id and recorded["n_rows"] == 2
    assert st.labels_since_last_snapshot() == 0


def test_same_rows_same_id_and_no_rewrite(tmp_path: Path) -> None:
    st = labeled_store(tmp_path)
    first = export_snapshot(st, tmp_path / "snaps", ROUTING)
    stamp = (first.path / "data.parquet").stat().st_mtime_ns
    again = export_snapshot(st, tmp_path / "snaps", ROUTING)
    assert again == first and (first.path / "data.parquet").stat().st_mtime_ns == stamp
    other = labeled_store(tmp_path / "elsewhere")  # the same labels in another store: same id
    assert export_snapshot(other, tmp_path / "snaps2", ROUTING).snapshot_id == first.snapshot_id
    ids = [s.sample_id for s in make_samples(6)]
    st.record_final_labels([FinalLabel(sample_id=ids[3], preferred="A", source=LabelSource.human, n_annotators=1)])
    assert st.labels_since_last_snapshot() == 1
    changed = export_snapshot(st, tmp_path / "snaps", ROUTING)
    assert changed.snapshot_id != first.snapshot_id and changed.n_rows == 3
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == sorted([first.snapshot_id, changed.snapshot_id])


def test_empty_store_exports_an_empty_snapshot(tmp_path: Path) -> None:
    st = Store(f"sqlite:///{tmp_path / 'juryflow.db'}")
    snap = export_snapshot(st, tmp_path / "snaps", {})
    assert snap.n_rows == 0 and load_snapshot(snap.path / "dataset").column_names == list(COLUMNS)


def test_staging_left_by_a_killed_export_is_swept(tmp_path: Path) -> None:
    import os
    import time

    st = labeled_store(tmp_path)
    snaps = tmp_path / "snaps"
    stale, fresh = snaps / ".deadbeef.4242.tmp", snaps / ".cafe.4343.tmp"
    for path in (stale, fresh):
        (path / "dataset").mkdir(parents=True)
    an_hour_ago = time.time() - 2 * 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    snap = export_snapshot(st, snaps, ROUTING)
    # The killed export's directory goes; a young one may be another worker mid-write and stays.
    assert not stale.exists() and fresh.is_dir()
    assert sorted(p.name for p in snaps.iterdir()) == sorted([snap.snapshot_id, fresh.name])


def test_streamed_snapshot_id_is_the_content_hash_of_its_rows(tmp_path: Path) -> None:
    from labeling.export import RowsHash, iter_snapshot_rows
    from labeling.schemas import content_hash

    st = labeled_store(tmp_path)
    rows = list(iter_snapshot_rows(st))
    rows.append({"prompt": "ünïcode ✓ \u202e", "confidence": 0.1 + 0.2, "n": None, "nested": {"b": 1, "a": [1.5]}})
    for part in (rows, rows[:1], []):
        digest = RowsHash()
        for row in part:
            digest.add(row)
        assert digest.hexdigest() == content_hash(part)
    assert export_snapshot(st, tmp_path / "snaps", ROUTING).snapshot_id == content_hash(rows[:-1])


def test_rows_stream_to_arrow_in_bounded_batches(tmp_path: Path, monkeypatch) -> None:
    import datasets
    import pyarrow as pa

    from labeling import export

    path = tmp_path / "rows.arrow"
    size_at_draw = []  # the file's size as each row is drawn: it grows once per batch, while rows are still drawn

    def rows():
        for i in range(7):
            size_at_draw.append(path.stat().st_size)
            yield {name: None for name in COLUMNS} | {"sample_id": f"r{i}", "source": "judge"}

    monkeypatch.setattr(export, "WRITE_BATCH_ROWS", 3)
    features = datasets.Features({name: datasets.Value(kind) for name, (kind, _) in COLUMNS.items()})
    _, counts = export.write_rows_arrow(rows(), path, features)
    assert counts == {"judge": 7}
    grew = [i for i in range(1, 7) if size_at_draw[i] > size_at_draw[i - 1]]
    assert grew == [3, 6]  # batches of 3 were written before rows 3 and 6 were read
    with pa.ipc.open_stream(str(path)) as reader:
        assert [b.num_rows for b in reader] == [3, 3, 1]
