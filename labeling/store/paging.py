"""Keyset paging over the samples of one state: pages of ids and chunk ranges, never the whole id list.

A page is ``state = :state AND sample_id > :after ORDER BY sample_id LIMIT :n`` (keyset pagination:
each page costs the same however deep it is, unlike OFFSET). A chunk range names a page by its
first and last id, so a flow can fan out over a 100k-sample state with a few dozen small values
instead of every id (Prefect keeps task results and parameters in the flow's memory). Ranges and
cursors compare in the database's own collation, so they agree with its ORDER BY on any dialect.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from labeling.schemas import SampleState
from labeling.store.tables import samples


class IdRange(BaseModel):
    """The samples of ``state`` whose ids lie between ``first`` and ``last`` (both included)."""

    model_config = ConfigDict(frozen=True)

    state: SampleState
    first: str
    last: str
    size: int  # ids in the range when it was listed; samples added since may make it a little larger


def id_page(conn: Connection, state: SampleState, limit: int, after: str | None = None) -> list[str]:
    """Up to ``limit`` ids in ``state``, in id order, after the cursor ``after`` (exclusive)."""
    query = select(samples.c.sample_id).where(samples.c.state == SampleState(state).value)
    if after is not None:
        query = query.where(samples.c.sample_id > after)
    return list(conn.execute(query.order_by(samples.c.sample_id).limit(limit)).scalars())


def ids_in_range(conn: Connection, id_range: IdRange) -> list[str]:
    """The ids of the range still in its state, in id order."""
    in_range = samples.c.sample_id.between(id_range.first, id_range.last)
    query = select(samples.c.sample_id).where(samples.c.state == id_range.state.value, in_range)
    return list(conn.execute(query.order_by(samples.c.sample_id)).scalars())
