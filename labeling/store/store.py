"""The one place juryflow keeps state: samples, every label, routes, tasks and small records.

SQLAlchemy Core on SQLite (default; WAL, safe from several processes) or PostgreSQL
(``postgresql+psycopg://...``). Every write is an idempotent upsert, so a re-run of any flow
writes nothing new; ``with store.atomic():`` groups writes into one transaction.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    make_url,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from labeling.schemas import (
    AILabel,
    ChatMessage,
    FinalLabel,
    HumanLabel,
    JudgeVerdict,
    QuarantineRecord,
    Route,
    Sample,
    SampleState,
    content_hash,
)

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
_CHUNK = 5_000  # rows per executemany / IN (...) list; well below SQLite's 32,766 variables


class InvalidTransition(ValueError):
    """A write would move a sample along an edge that is not in ALLOWED_TRANSITIONS."""


class UnknownSampleError(LookupError):
    """A write or read named a sample_id that was never added with ``add_samples``."""


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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # naive UTC: SQLite keeps no zone


_JSON = JSON().with_variant(JSONB(), "postgresql")  # JSONB: has equality, for IS DISTINCT FROM
md = MetaData()


def _table(name: str, *cols: Column) -> Table:
    return Table(name, md, *cols, Column("updated_at", DateTime, nullable=False))


samples = _table(
    "samples",
    Column("sample_id", String, primary_key=True),
    Column("source", String, nullable=False),
    Column("state", String, nullable=False, index=True),
    Column("fingerprint", String, nullable=False),
    Column("prompt", _JSON, nullable=False),
    Column("response_a", Text, nullable=False),
    Column("response_b", Text, nullable=False),
    Column("reference_label", String),
    Column("meta", _JSON, nullable=False),
)
ai_labels = _table(
    "ai_labels",
    Column("sample_id", String, primary_key=True),
    Column("labeler_version", String, primary_key=True),
    Column("labeler_name", String, nullable=False),
    Column("p_a", Float, nullable=False),
)
routes = _table(
    "routes",
    Column("sample_id", String, primary_key=True),
    Column("stage", String, primary_key=True),
    Column("to_judge", Boolean, nullable=False),
    Column("to_human", Boolean, nullable=False),
    Column("accept_judge", Boolean, nullable=False),
    Column("reasons", _JSON, nullable=False),
)
judge_verdicts = _table(
    "judge_verdicts",
    Column("sample_id", String, primary_key=True),
    Column("version", String, primary_key=True),
    Column("model", String, nullable=False),
    Column("p_a_original", Float),
    Column("p_a_swapped", Float),
    Column("principles", _JSON, nullable=False),
    Column("critique", Text),
    Column("parse_error", Text),
)
human_tasks = _table(
    "human_tasks",
    Column("sample_id", String, primary_key=True),
    Column("project_id", BigInteger, nullable=False),
    Column("task_id", BigInteger, nullable=False),
)
human_labels = _table(
    "human_labels",
    Column("annotation_id", String, primary_key=True),
    Column("sample_id", String, nullable=False, index=True),
    Column("annotator", String, nullable=False),
    Column("choice", String, nullable=False),
    Column("reason", Text),
    Column("cancelled", Boolean, nullable=False),
)
final_labels = _table(
    "final_labels",
    Column("sample_id", String, primary_key=True),
    Column("preferred", String, nullable=False),
    Column("source", String, nullable=False),
    Column("labeler_version", String),
    Column("judge_version", String),
    Column("confidence", Float),
    Column("n_annotators", Integer, nullable=False),
)
quarantine = _table(
    "quarantine",
    Column("record_id", String, primary_key=True),
    Column("sample_id", String, nullable=False),
    Column("source", String, nullable=False),
    Column("row", Integer),
    Column("field", String, nullable=False),
    Column("reason", Text, nullable=False),
)
watermarks = _table("watermarks", Column("name", String, primary_key=True), Column("value", Text, nullable=False))
records = _table(
    "records",
    Column("kind", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("payload", _JSON, nullable=False),
)
snapshots = _table(
    "snapshots",
    Column("snapshot_id", String, primary_key=True),
    Column("n_rows", Integer, nullable=False),
    Column("counts", _JSON, nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
        with self._write() as conn:
            if conn.dialect.name == "postgresql":  # concurrent CREATE TABLE races without it
                conn.execute(text("SELECT pg_advisory_xact_lock(7461239)"))
            md.create_all(conn)

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

    def _upsert(
        self, conn: Connection, table: Table, rows: list[dict[str, Any]], update_cols: Sequence[str] = ()
    ) -> None:
        """INSERT .. ON CONFLICT: update ``update_cols`` only when a value differs (so re-runs change nothing)."""
        if not rows:
            return
        now = _now()
        for row in rows:
            row["updated_at"] = now
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = dialect_insert(table)
        keys = [c.name for c in table.primary_key.columns]
        if update_cols:
            changed = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in update_cols))
            set_ = {c: stmt.excluded[c] for c in [*update_cols, "updated_at"]}
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=set_, where=changed)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        for chunk in _chunks(rows):
            conn.execute(stmt, list(chunk))

    def _select_in(
        self, conn: Connection, cols: Sequence[Any], key: Any, ids: Sequence[str], lock: bool = False
    ) -> list[Any]:
        out: list[Any] = []
        for chunk in _chunks(list(dict.fromkeys(ids))):
            query = select(*cols).where(key.in_(chunk))
            out.extend(conn.execute(query.with_for_update() if lock else query).all())
        return out

    def _advance(self, conn: Connection, targets: dict[str, SampleState]) -> None:
        """Move samples to their target states: forward along ALLOWED_TRANSITIONS, backwards = no-op."""
        current = dict(
            self._select_in(conn, [samples.c.sample_id, samples.c.state], samples.c.sample_id, list(targets), True)
        )
        missing = [i for i in targets if i not in current]
        if missing:
            raise UnknownSampleError(
                f"unknown sample_id(s) {missing[:5]} ({len(missing)} in all): add them with add_samples first"
            )
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
        now = _now()
        for target_value, ids in moves.items():
            for chunk in _chunks(ids):
                where = samples.c.sample_id.in_(chunk) & (samples.c.state != target_value)
                conn.execute(update(samples).where(where).values(state=target_value, updated_at=now))

    # -- samples and quarantine -----------------------------------------------------------------

    def add_samples(self, batch: Sequence[Sample], source: str) -> IngestResult:
        """Insert new samples; same id + same content is a no-op, same id + other content is quarantined."""
        first: dict[str, Sample] = {}
        conflicts: list[QuarantineRecord] = []
        for sample in batch:
            seen = first.setdefault(sample.sample_id, sample)
            if seen is not sample and seen.fingerprint() != sample.fingerprint():
                conflicts.append(_conflict(sample, source, "another sample with this id earlier in the same batch"))
        with self._write() as conn:
            key = samples.c.sample_id
            existing = dict(self._select_in(conn, [key, samples.c.fingerprint], key, list(first)))
            fresh = [s for i, s in first.items() if i not in existing]
            inserted: list[str] = []
            if fresh:
                now = _now()
                stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(samples)
                stmt = stmt.on_conflict_do_nothing(index_elements=["sample_id"]).returning(key)
                for chunk in _chunks([_sample_row(s, source, now) for s in fresh]):
                    inserted.extend(conn.execute(stmt, list(chunk)).scalars().all())
                won = set(inserted)
                lost = [s.sample_id for s in fresh if s.sample_id not in won]  # another writer inserted these
                existing.update(self._select_in(conn, [key, samples.c.fingerprint], key, lost))
            unchanged: list[str] = []
            for sample_id, sample in first.items():
                if sample_id not in existing or sample_id in inserted:
                    continue
                if existing[sample_id] == sample.fingerprint():
                    unchanged.append(sample_id)
                else:
                    conflicts.append(_conflict(sample, source, "an already stored sample with this id"))
            self.add_quarantine(conflicts)
        done = set(inserted)
        return IngestResult(inserted=[i for i in first if i in done], unchanged=unchanged, conflicts=conflicts)

    def add_quarantine(self, batch: Sequence[QuarantineRecord]) -> None:
        rows = [{**r.model_dump(), "record_id": content_hash(r.model_dump())} for r in batch]
        with self._write() as conn:
            self._upsert(conn, quarantine, rows)

    def list_quarantine(self, limit: int | None = None) -> list[QuarantineRecord]:
        cols = [quarantine.c[c] for c in ("sample_id", "source", "row", "field", "reason")]
        query = select(*cols).order_by(quarantine.c.updated_at, quarantine.c.record_id).limit(limit)
        with self._read() as conn:
            return [QuarantineRecord(**row._mapping) for row in conn.execute(query)]

    def get_samples(self, ids: Sequence[str], state: SampleState | None = None) -> list[Sample]:
        """The samples, in the order of ``ids``. With ``state``: only those still in that state
        (a task's work list, read in one query; ids in other states are skipped, not errors)."""
        with self._read() as conn:
            rows = self._select_in(conn, [samples], samples.c.sample_id, ids)
        if state is not None:
            wanted = SampleState(state).value
            in_state = {r.sample_id: _row_sample(r) for r in rows if r.state == wanted}
            return [in_state[i] for i in dict.fromkeys(ids) if i in in_state]
        found = {r.sample_id: _row_sample(r) for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise UnknownSampleError(
                f"unknown sample_id(s) {missing[:5]} ({len(missing)} in all): add them with add_samples first"
            )
        return [found[i] for i in ids]

    def ids_in_state(self, state: SampleState, limit: int | None = None) -> list[str]:
        query = select(samples.c.sample_id).where(samples.c.state == SampleState(state).value)
        with self._read() as conn:
            return list(conn.execute(query.order_by(samples.c.sample_id).limit(limit)).scalars())

    def sample_states(self, ids: Sequence[str]) -> dict[str, SampleState]:
        with self._read() as conn:
            rows = self._select_in(conn, [samples.c.sample_id, samples.c.state], samples.c.sample_id, ids)
        return {i: SampleState(s) for i, s in rows}

    def count_by_state(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(samples.c.state, func.count()).group_by(samples.c.state)).all()
        return {state: n for state, n in rows}

    # -- labels, routes, verdicts ---------------------------------------------------------------

    def record_ai_labels(self, labels: Sequence[AILabel]) -> None:
        rows = [label.model_dump(include={"sample_id", "labeler_version", "labeler_name", "p_a"}) for label in labels]
        with self._write() as conn:
            self._advance(conn, {label.sample_id: S.ai_labeled for label in labels})
            self._upsert(conn, ai_labels, rows, ["labeler_name", "p_a"])

    def get_ai_labels(self, ids: Sequence[str]) -> dict[str, AILabel]:
        with self._read() as conn:
            rows = self._select_in(conn, [ai_labels], ai_labels.c.sample_id, ids)
        return {r.sample_id: AILabel(**_fields(r, AILabel)) for r in sorted(rows, key=_latest)}

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
            self._advance(conn, targets)
            self._upsert(conn, routes, rows, ["to_judge", "to_human", "accept_judge", "reasons"])

    def get_routes(self, ids: Sequence[str]) -> dict[str, dict[str, Route]]:
        with self._read() as conn:
            rows = self._select_in(conn, [routes], routes.c.sample_id, ids)
        out: dict[str, dict[str, Route]] = {}
        for r in rows:
            out.setdefault(r.sample_id, {})[r.stage] = Route(**_fields(r, Route))
        return out

    def record_verdicts(self, verdicts: Sequence[JudgeVerdict]) -> None:
        cols = ["model", "p_a_original", "p_a_swapped", "principles", "critique", "parse_error"]
        rows = [v.model_dump(include={"sample_id", "version", *cols}) for v in verdicts]
        with self._write() as conn:
            self._upsert(conn, judge_verdicts, rows, cols)

    def get_verdicts(self, ids: Sequence[str]) -> dict[str, JudgeVerdict]:
        with self._read() as conn:
            rows = self._select_in(conn, [judge_verdicts], judge_verdicts.c.sample_id, ids)
        return {r.sample_id: JudgeVerdict(**_fields(r, JudgeVerdict)) for r in sorted(rows, key=_latest)}

    def record_final_labels(self, labels: Sequence[FinalLabel]) -> None:
        cols = ["preferred", "source", "labeler_version", "judge_version", "confidence", "n_annotators"]
        rows = [label.model_dump(mode="json") for label in labels]
        with self._write() as conn:
            self._advance(conn, {label.sample_id: S.labeled for label in labels})
            self._upsert(conn, final_labels, rows, cols)

    def get_final_labels(self, ids: Sequence[str] | None = None) -> dict[str, FinalLabel]:
        with self._read() as conn:
            if ids is None:
                rows = conn.execute(select(final_labels).order_by(final_labels.c.sample_id)).all()
            else:
                rows = self._select_in(conn, [final_labels], final_labels.c.sample_id, ids)
        return {r.sample_id: FinalLabel(**_fields(r, FinalLabel)) for r in rows}

    def record_human_labels(self, labels: Sequence[HumanLabel]) -> None:
        cols = ["sample_id", "annotator", "choice", "reason", "cancelled"]
        with self._write() as conn:
            self._upsert(conn, human_labels, [label.model_dump() for label in labels], cols)

    def get_human_labels(self, ids: Sequence[str]) -> dict[str, list[HumanLabel]]:
        with self._read() as conn:
            rows = self._select_in(conn, [human_labels], human_labels.c.sample_id, ids)
        out: dict[str, list[HumanLabel]] = {}
        for r in sorted(rows, key=lambda r: (r.updated_at, r.annotation_id)):
            out.setdefault(r.sample_id, []).append(HumanLabel(**_fields(r, HumanLabel)))
        return out

    def record_human_tasks(self, tasks: Sequence[HumanTask]) -> None:
        with self._write() as conn:
            self._upsert(conn, human_tasks, [t.model_dump() for t in tasks], ["project_id", "task_id"])

    def get_human_tasks(self, ids: Sequence[str] | None = None) -> dict[str, HumanTask]:
        with self._read() as conn:
            if ids is None:
                rows = conn.execute(select(human_tasks).order_by(human_tasks.c.sample_id)).all()
            else:
                rows = self._select_in(conn, [human_tasks], human_tasks.c.sample_id, ids)
        return {r.sample_id: HumanTask(**_fields(r, HumanTask)) for r in rows}

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
            self._upsert(conn, watermarks, [{"name": name, "value": value}], ["value"])

    def put_record(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        with self._write() as conn:
            self._upsert(conn, records, [{"kind": kind, "key": key, "payload": payload}], ["payload"])

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        where = (records.c.kind == kind) & (records.c.key == key)
        with self._read() as conn:
            return conn.execute(select(records.c.payload).where(where)).scalar()

    def list_records(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        query = select(records.c.key, records.c.payload).where(records.c.kind == kind).order_by(records.c.key)
        with self._read() as conn:
            return [(k, p) for k, p in conn.execute(query)]

    def iter_labeled(self) -> list[tuple[Sample, FinalLabel]]:
        label_cols = [final_labels.c[name].label(f"label_{name}") for name in FinalLabel.model_fields]
        query = select(samples, *label_cols).join(final_labels, final_labels.c.sample_id == samples.c.sample_id)
        with self._read() as conn:
            rows = conn.execute(query.order_by(samples.c.sample_id)).all()
        names = list(FinalLabel.model_fields)
        return [(_row_sample(r), FinalLabel(**{n: r._mapping[f"label_{n}"] for n in names})) for r in rows]

    def record_snapshot(
        self, snapshot_id: str, n_rows: int, counts: dict[str, Any], path: str, created_at: datetime | None = None
    ) -> None:
        """Idempotent. ``created_at``: when the rows were read; labels written after it count as new."""
        stamp = _now() if created_at is None else created_at
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        row = {"snapshot_id": snapshot_id, "n_rows": n_rows, "counts": counts, "path": str(path), "created_at": stamp}
        with self._write() as conn:
            self._upsert(conn, snapshots, [row])

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
    # WAL: readers never block the writer; busy_timeout: wait up to 30 s for another process's lock.
    for pragma in ("journal_mode=WAL", "busy_timeout=30000", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two processes' read-check-write cannot interleave.
    write = conn.get_execution_options().get("juryflow_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _sample_row(s: Sample, source: str, now: datetime) -> dict[str, Any]:
    prompt = s.prompt if isinstance(s.prompt, str) else [m.model_dump() for m in s.prompt]
    return {
        "sample_id": s.sample_id,
        "source": source,
        "state": S.new.value,
        "fingerprint": s.fingerprint(),
        "prompt": prompt,
        "response_a": s.response_a,
        "response_b": s.response_b,
        "reference_label": s.reference_label,
        "meta": s.metadata,
        "updated_at": now,
    }


def _row_sample(r: Any) -> Sample:
    prompt = r.prompt if isinstance(r.prompt, str) else [ChatMessage(**m) for m in r.prompt]
    return Sample(
        sample_id=r.sample_id,
        prompt=prompt,
        response_a=r.response_a,
        response_b=r.response_b,
        metadata=r.meta,
        reference_label=r.reference_label,
    )


def _fields(row: Any, model: type[BaseModel]) -> dict[str, Any]:
    mapping = row._mapping
    return {name: mapping[name] for name in model.model_fields if name in mapping}


def _latest(row: Any) -> tuple[datetime, str]:
    """Sort key: later writes last, so a dict built in this order keeps the latest per sample."""
    return (row.updated_at, row._mapping.get("labeler_version") or row._mapping.get("version") or "")


def _conflict(sample: Sample, source: str, other: str) -> QuarantineRecord:
    return QuarantineRecord(
        sample_id=sample.sample_id,
        source=source,
        field="sample_id",
        reason=f"content differs from {other}: give this sample a new sample_id, or drop the duplicate row",
    )
