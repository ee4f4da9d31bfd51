"""Keyset paging over the samples of one state: pages of ids and chunk ranges, never the whole id list.

A page is ``state = :state AND sample_id > :after ORDER BY sample_id LIMIT :n`` (keyset pagination:
each page costs the same however deep it is, unlike OFFSET). A chunk range names a page by its
first and last id, so a flow can fan out over a 100k-sample state with a few dozen small values
instead of every id (Prefect keeps task results and parameters in the flow's memory). Ranges and
cursors compare in the database's own collation, so they agree with its ORDER BY on any dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from labeling.schemas import SampleState
from labeling.store.tables import samples

T = TypeVar("T")


class ReadableStore(Protocol):
    """What paging needs of labeling.store.Store (which imports this module): a read connection."""

    def _read(self) -> AbstractContextManager[Connection]: ...


class IdRange(BaseModel):
    """The samples of ``state`` whose ids lie between ``first`` and ``last`` (both included)."""

    model_config = ConfigDict(frozen=True)

    state: SampleState
    first: str
    last: str
    size: int  # ids in the range when it was listed; samples added since may make it a little larger


def id_page(conn: Connection, state: SampleState, limit: int | None, after: str | None = None) -> list[str]:
    """Up to ``limit`` ids (all: None) in ``state``, in id order, after the cursor ``after`` (exclusive)."""
    query = select(samples.c.sample_id).where(samples.c.state == SampleState(state).value)
    if after is not None:
        query = query.where(samples.c.sample_id > after)
    return list(conn.execute(query.order_by(samples.c.sample_id).limit(limit)).scalars())


def keyset_pages(read_page: Callable[[Any], list[T]], key: Callable[[T], Any], page_size: int) -> Iterator[list[T]]:
    """Pages ``read_page(after)`` returns, from ``after=None``, each cursor the key of the page before's
    last row; a short page is the last (one read per page, each as cheap as the first)."""
    after = None
    while page := read_page(after):
        yield page
        if len(page) < page_size:
            return
        after = key(page[-1])


def iter_id_pages(store: ReadableStore, state: SampleState, page_size: int) -> Iterator[list[str]]:
    """The ids in ``state`` in pages of ``page_size``, one short read per page."""

    def read(after: str | None) -> list[str]:
        with store._read() as conn:
            return id_page(conn, state, page_size, after)

    return keyset_pages(read, lambda sample_id: sample_id, page_size)


def id_ranges(store: ReadableStore, state: SampleState, chunk_size: int) -> list[IdRange]:
    """The ids in ``state`` as consecutive ranges of ``chunk_size``: a few small values per 100k ids."""
    return [IdRange(state=SampleState(state), first=page[0], last=page[-1], size=len(page))
            for page in iter_id_pages(store, state, chunk_size)]  # fmt: skip


def ids_in_range(store: ReadableStore, id_range: IdRange) -> list[str]:
    """The ids of the range still in its state, in id order."""
    in_range = samples.c.sample_id.between(id_range.first, id_range.last)
    query = select(samples.c.sample_id).where(samples.c.state == id_range.state.value, in_range)
    with store._read() as conn:
        return list(conn.execute(query.order_by(samples.c.sample_id)).scalars())
