"""Dialect-neutral SQL helpers the store is written with: chunked IN lists and idempotent upserts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, or_, select
from sqlalchemy.dialects import postgresql, sqlite

CHUNK = 5_000  # rows per executemany / IN (...) list; well below SQLite's 32,766 variables


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: SQLite keeps no zone


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def dialect_insert(conn: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support for this connection's dialect."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]], update_cols: Sequence[str] = ()) -> None:
    """INSERT .. ON CONFLICT: update ``update_cols`` only when a value differs (so re-runs change nothing)."""
    if not rows:
        return
    stamp = now()
    for row in rows:
        row["updated_at"] = stamp
    stmt = dialect_insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    if update_cols:
        changed = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in update_cols))
        set_ = {c: stmt.excluded[c] for c in [*update_cols, "updated_at"]}
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=set_, where=changed)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    for chunk in chunks(rows):
        conn.execute(stmt, list(chunk))


def select_in(conn: Connection, cols: Sequence[Any], key: Any, ids: Sequence[str], lock: bool = False) -> list[Any]:
    """Rows whose ``key`` is in ``ids``, one query per chunk; ``lock``: SELECT .. FOR UPDATE."""
    out: list[Any] = []
    for chunk in chunks(list(dict.fromkeys(ids))):
        query = select(*cols).where(key.in_(chunk))
        out.extend(conn.execute(query.with_for_update() if lock else query).all())
    return out
