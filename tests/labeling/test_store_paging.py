"""labeling/store/paging.py: a state's ids in keyset pages and chunk ranges, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from labeling.schemas import Route, RouteReason, SampleState
from labeling.store import IdRange, Store, paging
from tests.labeling.conftest import make_samples


@pytest.fixture
def statements(store: Store):
    """Every SELECT on the samples table the store runs, with its parameters."""
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM samples" in statement:
            seen.append((statement, parameters))

    event.listen(store._engine, "after_cursor_execute", record)
    yield seen
    event.remove(store._engine, "after_cursor_execute", record)


def send_to_humans(store: Store, ids: list[str]) -> None:
    routes = [Route(sample_id=i, to_judge=False, to_human=True, reasons=[RouteReason.cold_start]) for i in ids]
    store.record_routes(routes, "labeler")


def test_ranges_cover_the_state_in_pages_of_bounded_size(store: Store, statements) -> None:
    ids = [s.sample_id for s in make_samples(26)]
    store.add_samples(make_samples(26), "fixture")
    send_to_humans(store, ids[::4])  # other states interleave with the one paged
    in_new = [i for i in ids if i not in ids[::4]]
    statements.clear()

    ranges = paging.id_ranges(store, SampleState.new, 6)

    assert [r.size for r in ranges] == [6, 6, 6, 1]
    assert [(r.first, r.last) for r in ranges] == [(p[0], p[-1]) for p in (in_new[i : i + 6] for i in range(0, 19, 6))]
    # Keyset pagination: one query per page (the short last one ends it), each fetching at most a
    # page and starting after the last id seen, none skipping rows with OFFSET.
    assert len(statements) == len(ranges)
    for n, (sql, params) in enumerate(statements):
        values = list(params.values() if isinstance(params, dict) else params)
        assert "LIMIT" in sql.upper() and 6 in values, (sql, params)
        assert "OFFSET" not in sql.upper() or values[-1] == 0, (sql, params)  # SQLite always writes OFFSET ?
        assert (n == 0) == ("sample_id >" not in sql), sql
    statements.clear()

    read = [paging.ids_in_range(store, r) for r in ranges]
    assert [i for chunk in read for i in chunk] == in_new  # every id once, none from other states
    assert [len(chunk) for chunk in read] == [r.size for r in ranges]
    assert len(statements) == len(ranges)


def test_a_range_reads_only_samples_still_in_its_state(store: Store) -> None:
    ids = [s.sample_id for s in make_samples(10)]
    store.add_samples(make_samples(10), "fixture")
    (whole,) = paging.id_ranges(store, SampleState.new, 10)
    send_to_humans(store, ids[3:5])  # moved on after listing: a rerun's chunk skips them
    assert paging.ids_in_range(store, whole) == ids[:3] + ids[5:]
    assert paging.ids_in_range(store, IdRange(state=SampleState.human_pending, first=ids[0], last=ids[9], size=2)) == ids[3:5]


def test_pages_follow_the_cursor_while_the_state_drains(store: Store) -> None:
    ids = [s.sample_id for s in make_samples(9)]
    store.add_samples(make_samples(9), "fixture")
    pages = []
    for page in paging.iter_id_pages(store, SampleState.new, 4):
        pages.append(page)
        send_to_humans(store, page)  # what a stage does to each chunk before the next is read
    assert pages == [ids[:4], ids[4:8], ids[8:]]
    assert paging.id_ranges(store, SampleState.new, 4) == []


def test_final_labels_by_source_are_filtered_in_the_query(store: Store) -> None:
    from labeling.schemas import FinalLabel, LabelSource

    ids = [s.sample_id for s in make_samples(4)]
    store.add_samples(make_samples(4), "fixture")
    send_to_humans(store, ids)
    sources = [LabelSource.judge, LabelSource.human, LabelSource.human_over_judge, LabelSource.judge]
    labels = [FinalLabel(sample_id=i, preferred="A", source=s, n_annotators=1) for i, s in zip(ids, sources)]
    store.record_final_labels(labels)
    humans = (LabelSource.human, LabelSource.human_over_judge)
    assert list(store.get_final_labels(sources=humans)) == ids[1:3]
    assert list(store.get_final_labels(ids[2:], sources=humans)) == [ids[2]]
    assert len(store.get_final_labels()) == 4
