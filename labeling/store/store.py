"""The one place juryflow keeps state: samples, every label, routes, tasks and small records.

SQLAlchemy Core on SQLite (default; WAL, safe from several processes) or PostgreSQL
(``postgresql+psycopg://...``). Every write is an idempotent upsert, so a re-run of any flow
writes nothing new; ``with store.atomic():`` groups writes into one transaction. Opening a
store upgrades its schema to the latest migration (``labeling/store/migrate.py``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Collection, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, create_engine, event, func, make_url, select

from labeling.schemas import (
    AILabel,
    FinalLabel,
    HumanLabel,
    JudgeVerdict,
    LabelSource,
    QuarantineRecord,
    Route,
    Sample,
    SampleState,
    content_hash,
)
from labeling.store.migrate import current_revision, head_revision, upgrade_to_head
from labeling.store.paging import id_page
from labeling.store.rows import conflict, fields, latest, row_sample, sample_row
from labeling.store.sql import chunks, dialect_insert, now, select_in, upsert
from labeling.store.states import S, advance, unknown_samples
from labeling.store.tables import (
    ai_labels,
    final_labels,
    human_labels,
    human_tasks,
    judge_verdicts,
    quarantine,
    records,
    routes,
    samples,
    snapshots,
    watermarks,
)


class HumanTask(BaseModel):
    """A sample's task in Label Studio."""

    model_config = ConfigDict(frozen=True)

    sample_id: str
    project_id: int
    task_id: int


class IngestResult(BaseModel):
    inserted: list[str]
    unchanged: list[str]
    conflicts: list[QuarantineRecord]


class Store:
    """The juryflow database. ``Store("sqlite:///x.db")`` or ``Store("postgresql+psycopg://...")``."""

    def __init__(self, url: str) -> None:
        self.url = url
        dumps = partial(json.dumps, sort_keys=True, ensure_ascii=False)
        if url.startswith("sqlite"):
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # timeout: sqlite3's own wait for a lock; isolation_level None: we issue BEGIN ourselves.
            self._engine = create_engine(
                url, json_serializer=dumps, connect_args={"timeout": 30, "isolation_level": None}
            )
            event.listen(self._engine, "connect", _sqlite_on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        else:
            self._engine = create_engine(url, json_serializer=dumps, pool_pre_ping=True)
        self._conn: ContextVar[Connection | None] = ContextVar(f"juryflow_store_{id(self)}", default=None)
        with self._read() as conn:  # the common case, a database at head, takes no lock
            current = current_revision(conn)
        if current != head_revision():
            with self._write() as conn:
                upgrade_to_head(conn)

    @classmethod
    def from_settings(cls, settings: Any) -> Store:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_store_url)

    def close(self) -> None:
        self._engine.dispose()

    # -- transactions ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Connection]:
        """One transaction for every store call inside; nested calls join it, an exception rolls all back."""
        with self._write() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        joined = self._conn.get()
        if joined is not None:
            yield joined
            return
        # juryflow_write: SQLite takes the write lock at BEGIN, so read-check-write cannot interleave.
        with self._engine.connect().execution_options(juryflow_write=True) as conn, conn.begin():
            token = self._conn.set(conn)
            try:
                yield conn
            finally:
                self._conn.reset(token)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        joined = self._conn.get()
        if joined is not None:
            yield joined
            return
        with self._engine.connect() as conn:
            yield conn

    # -- samples and quarantine -----------------------------------------------------------------

    def add_samples(self, batch: Sequence[Sample], source: str) -> IngestResult:
        """Insert new samples; same id + same content is a no-op, same id + other content is quarantined."""
        first: dict[str, Sample] = {}
        conflicts: list[QuarantineRecord] = []
        for sample in batch:
            seen = first.setdefault(sample.sample_id, sample)
            if seen is not sample and seen.fingerprint() != sample.fingerprint():
                conflicts.append(conflict(sample, source, "another sample with this id earlier in the same batch"))
        with self._write() as conn:
            key = samples.c.sample_id
            existing = dict(select_in(conn, [key, samples.c.fingerprint], key, list(first)))
            fresh = [s for i, s in first.items() if i not in existing]
            inserted: list[str] = []
            if fresh:
                stamp = now()
                stmt = dialect_insert(conn, samples)
                stmt = stmt.on_conflict_do_nothing(index_elements=["sample_id"]).returning(key)
                for chunk in chunks([sample_row(s, source, stamp) for s in fresh]):
                    inserted.extend(conn.execute(stmt, list(chunk)).scalars().all())
                won = set(inserted)
                lost = [s.sample_id for s in fresh if s.sample_id not in won]  # another writer inserted these
                existing.update(select_in(conn, [key, samples.c.fingerprint], key, lost))
            unchanged: list[str] = []
            for sample_id, sample in first.items():
                if sample_id not in existing or sample_id in inserted:
                    continue
                if existing[sample_id] == sample.fingerprint():
                    unchanged.append(sample_id)
                else:
                    conflicts.append(conflict(sample, source, "an already stored sample with this id"))
            self.add_quarantine(conflicts)
        done = set(inserted)
        return IngestResult(inserted=[i for i in first if i in done], unchanged=unchanged, conflicts=conflicts)

    def add_quarantine(self, batch: Sequence[QuarantineRecord]) -> None:
        rows = [{**r.model_dump(), "record_id": content_hash(r.model_dump())} for r in batch]
        with self._write() as conn:
            upsert(conn, quarantine, rows)

    def list_quarantine(self, limit: int | None = None) -> list[QuarantineRecord]:
        cols = [quarantine.c[c] for c in ("sample_id", "source", "row", "field", "reason")]
        query = select(*cols).order_by(quarantine.c.updated_at, quarantine.c.record_id).limit(limit)
        with self._read() as conn:
            return [QuarantineRecord(**row._mapping) for row in conn.execute(query)]

    def get_samples(self, ids: Sequence[str], state: SampleState | None = None) -> list[Sample]:
        """The samples, in the order of ``ids``. With ``state``: only those still in that state
        (a task's work list, read in one query; ids in other states are skipped, not errors)."""
        with self._read() as conn:
            rows = select_in(conn, [samples], samples.c.sample_id, ids)
        if state is not None:
            wanted = SampleState(state).value
            in_state = {r.sample_id: row_sample(r) for r in rows if r.state == wanted}
            return [in_state[i] for i in dict.fromkeys(ids) if i in in_state]
        found = {r.sample_id: row_sample(r) for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise unknown_samples(missing)
        return [found[i] for i in ids]

    def ids_in_state(self, state: SampleState, limit: int | None = None) -> list[str]:
        """Every id in ``state`` (or the first ``limit``); for big states, labeling.store.paging pages them."""
        with self._read() as conn:
            return id_page(conn, state, limit)

    def sample_states(self, ids: Sequence[str]) -> dict[str, SampleState]:
        with self._read() as conn:
            rows = select_in(conn, [samples.c.sample_id, samples.c.state], samples.c.sample_id, ids)
        return {i: SampleState(s) for i, s in rows}

    def count_by_state(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(samples.c.state, func.count()).group_by(samples.c.state)).all()
        return {state: n for state, n in rows}

    # -- labels, routes, verdicts ---------------------------------------------------------------

    def record_ai_labels(self, labels: Sequence[AILabel]) -> None:
        rows = [label.model_dump(include={"sample_id", "labeler_version", "labeler_name", "p_a"}) for label in labels]
        with self._write() as conn:
            advance(conn, {label.sample_id: S.ai_labeled for label in labels})
            upsert(conn, ai_labels, rows, ["labeler_name", "p_a"])

    def get_ai_labels(self, ids: Sequence[str]) -> dict[str, AILabel]:
        with self._read() as conn:
            rows = select_in(conn, [ai_labels], ai_labels.c.sample_id, ids)
        return {r.sample_id: AILabel(**fields(r, AILabel)) for r in sorted(rows, key=latest)}

    def record_routes(self, batch: Sequence[Route], stage: Literal["labeler", "judge"]) -> None:
        if stage not in ("labeler", "judge"):
            raise ValueError(f"route stage {stage!r} is not 'labeler' or 'judge'")
        targets: dict[str, SampleState] = {}
        for r in batch:
            if stage == "labeler" and r.to_judge:
                targets[r.sample_id] = S.judge_pending
            elif r.to_human:
                targets[r.sample_id] = S.human_pending
        rows = [{**r.model_dump(mode="json"), "stage": stage} for r in batch]
        with self._write() as conn:
            advance(conn, targets)
            upsert(conn, routes, rows, ["to_judge", "to_human", "accept_judge", "reasons"])

    def get_routes(self, ids: Sequence[str]) -> dict[str, dict[str, Route]]:
        with self._read() as conn:
            rows = select_in(conn, [routes], routes.c.sample_id, ids)
        out: dict[str, dict[str, Route]] = {}
        for r in rows:
            out.setdefault(r.sample_id, {})[r.stage] = Route(**fields(r, Route))
        return out

    def record_verdicts(self, verdicts: Sequence[JudgeVerdict]) -> None:
        cols = ["model", "p_a_original", "p_a_swapped", "principles", "critique", "parse_error"]
        rows = [v.model_dump(include={"sample_id", "version", *cols}) for v in verdicts]
        with self._write() as conn:
            upsert(conn, judge_verdicts, rows, cols)

    def get_verdicts(self, ids: Sequence[str]) -> dict[str, JudgeVerdict]:
        with self._read() as conn:
            rows = select_in(conn, [judge_verdicts], judge_verdicts.c.sample_id, ids)
        return {r.sample_id: JudgeVerdict(**fields(r, JudgeVerdict)) for r in sorted(rows, key=latest)}

    def record_final_labels(self, labels: Sequence[FinalLabel]) -> None:
        cols = ["preferred", "source", "labeler_version", "judge_version", "confidence", "n_annotators"]
        rows = [label.model_dump(mode="json") for label in labels]
        with self._write() as conn:
            advance(conn, {label.sample_id: S.labeled for label in labels})
            upsert(conn, final_labels, rows, cols)

    def get_final_labels(
        self, ids: Sequence[str] | None = None, sources: Collection[LabelSource] | None = None
    ) -> dict[str, FinalLabel]:
        """The final labels of ``ids`` (default: all). ``sources`` keeps only labels from those sources,
        read in the query: the human ones stay few while judge labels grow with every batch."""
        query = select(final_labels)
        if sources is not None:
            query = query.where(final_labels.c.source.in_(sorted(LabelSource(s).value for s in sources)))
        with self._read() as conn:
            if ids is None:
                rows = conn.execute(query.order_by(final_labels.c.sample_id)).all()
            else:
                rows = select_in(conn, [final_labels], final_labels.c.sample_id, ids)
        labels = {r.sample_id: FinalLabel(**fields(r, FinalLabel)) for r in rows}
        if sources is not None and ids is not None:
            labels = {i: label for i, label in labels.items() if label.source in sources}
        return labels

    def record_human_labels(self, labels: Sequence[HumanLabel]) -> None:
        cols = ["sample_id", "annotator", "choice", "reason", "cancelled"]
        with self._write() as conn:
            upsert(conn, human_labels, [label.model_dump() for label in labels], cols)

    def get_human_labels(self, ids: Sequence[str]) -> dict[str, list[HumanLabel]]:
        with self._read() as conn:
            rows = select_in(conn, [human_labels], human_labels.c.sample_id, ids)
        out: dict[str, list[HumanLabel]] = {}
        for r in sorted(rows, key=lambda r: (r.updated_at, r.annotation_id)):
            out.setdefault(r.sample_id, []).append(HumanLabel(**fields(r, HumanLabel)))
        return out

    def record_human_tasks(self, tasks: Sequence[HumanTask]) -> None:
        with self._write() as conn:
            upsert(conn, human_tasks, [t.model_dump() for t in tasks], ["project_id", "task_id"])

    def get_human_tasks(self, ids: Sequence[str] | None = None) -> dict[str, HumanTask]:
        with self._read() as conn:
            if ids is None:
                rows = conn.execute(select(human_tasks).order_by(human_tasks.c.sample_id)).all()
            else:
                rows = select_in(conn, [human_tasks], human_tasks.c.sample_id, ids)
        return {r.sample_id: HumanTask(**fields(r, HumanTask)) for r in rows}

    def unpushed_human_pending(self, limit: int | None = None) -> list[str]:
        pushed = select(human_tasks.c.sample_id).where(human_tasks.c.sample_id == samples.c.sample_id)
        query = select(samples.c.sample_id).where(samples.c.state == S.human_pending.value, ~pushed.exists())
        with self._read() as conn:
            return list(conn.execute(query.order_by(samples.c.sample_id).limit(limit)).scalars())

    # -- watermarks, generic records, snapshots -------------------------------------------------

    def get_watermark(self, name: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(watermarks.c.value).where(watermarks.c.name == name)).scalar()

    def set_watermark(self, name: str, value: str) -> None:
        with self._write() as conn:
            upsert(conn, watermarks, [{"name": name, "value": value}], ["value"])

    def put_record(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        with self._write() as conn:
            upsert(conn, records, [{"kind": kind, "key": key, "payload": payload}], ["payload"])

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        where = (records.c.kind == kind) & (records.c.key == key)
        with self._read() as conn:
            return conn.execute(select(records.c.payload).where(where)).scalar()

    def list_records(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        query = select(records.c.key, records.c.payload).where(records.c.kind == kind).order_by(records.c.key)
        with self._read() as conn:
            return [(k, p) for k, p in conn.execute(query)]

    def iter_labeled(self, batch_size: int = 1_000) -> Iterator[tuple[Sample, FinalLabel]]:
        """Every labeled sample and its final label, in id order, streamed ``batch_size`` rows at a time.

        One query (a server-side cursor on PostgreSQL), so the rows are one consistent view and never
        all in memory; the connection stays open until the iteration ends.
        """
        label_cols = [final_labels.c[name].label(f"label_{name}") for name in FinalLabel.model_fields]
        query = select(samples, *label_cols).join(final_labels, final_labels.c.sample_id == samples.c.sample_id)
        names = list(FinalLabel.model_fields)
        with self._read() as conn:
            for r in conn.execution_options(yield_per=batch_size).execute(query.order_by(samples.c.sample_id)):
                yield row_sample(r), FinalLabel(**{n: r._mapping[f"label_{n}"] for n in names})

    def record_snapshot(
        self, snapshot_id: str, n_rows: int, counts: dict[str, Any], path: str, created_at: datetime | None = None
    ) -> None:
        """Idempotent. ``created_at``: when the rows were read; labels written after it count as new."""
        stamp = now() if created_at is None else created_at
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        row = {"snapshot_id": snapshot_id, "n_rows": n_rows, "counts": counts, "path": str(path), "created_at": stamp}
        with self._write() as conn:
            upsert(conn, snapshots, [row])

    def last_snapshot(self) -> dict[str, Any] | None:
        cols = [snapshots.c[c] for c in ("snapshot_id", "n_rows", "counts", "path", "created_at")]
        query = select(*cols).order_by(snapshots.c.created_at.desc(), snapshots.c.snapshot_id.desc()).limit(1)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return {**row._mapping, "created_at": row.created_at.replace(tzinfo=UTC).isoformat()}

    def labels_since_last_snapshot(self) -> int:
        last = select(func.max(snapshots.c.created_at)).scalar_subquery()
        query = select(func.count()).select_from(final_labels)
        with self._read() as conn:
            if conn.execute(select(func.count()).select_from(snapshots)).scalar():
                query = query.where(final_labels.c.updated_at > last)
            return int(conn.execute(query).scalar() or 0)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # busy_timeout: wait up to 30 s for another process's lock.
    for pragma in ("busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    _use_wal(cursor)
    cursor.close()


def _use_wal(cursor: Any, wait_s: float = 30.0) -> None:
    """WAL, so readers never block the writer. The mode is stored in the file, so only a new database
    needs the switch; the switch takes an exclusive lock and SQLite answers "database is locked" at once,
    without its busy handler, when workers opening a new database at once collide on it: retry."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")  # an in-memory database answers "memory": fine
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two processes' read-check-write cannot interleave.
    write = conn.get_execution_options().get("juryflow_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
