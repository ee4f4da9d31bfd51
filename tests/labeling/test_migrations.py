"""labeling/store/migrate.py and migrations/: a store upgrades its schema to head when it opens.

On SQLite, and on PostgreSQL when JURYFLOW_TEST_PG_URL is set (see tests/labeling/conftest.py).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, Table, create_engine, insert, inspect, select, text

from labeling.schemas import Sample, SampleState
from labeling.store import Store, md, migrate
from labeling.store.migrate import MIGRATIONS_DIR, VERSION_TABLE, current_revision, head_revision
from labeling.store.store import _use_wal
from tests.labeling.conftest import DATA, results_of_processes

LEGACY_DDL = DATA / "store_schema_v0"  # the schema create_all made before migrations existed
STAMP = datetime(2026, 11, 30, 12, 0, 0)


def legacy_database(url: str) -> None:
    """A database exactly as the store made it before migrations, holding one row per table."""
    engine = create_engine(url)
    dialect = engine.dialect.name
    ddl = (LEGACY_DDL / f"{dialect}.sql").read_text(encoding="utf-8")
    statements = [s for s in "\n".join(x for x in ddl.splitlines() if not x.startswith("--")).split(";") if s.strip()]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
        tables = {name: Table(name, MetaData(), autoload_with=conn) for name in LEGACY_ROWS}
        for name, rows in LEGACY_ROWS.items():
            conn.execute(insert(tables[name]), [{**row, "updated_at": STAMP} for row in rows])
    engine.dispose()


LEGACY_ROWS: dict[str, list[dict[str, Any]]] = {
    "samples": [
        {
            "sample_id": "old-1",
            "source": "old.jsonl",
            "state": "labeled",
            "fingerprint": "f1",
            "prompt": "Hi?",
            "response_a": "Hello!",
            "response_b": "Go away.",
            "reference_label": "A",
            "meta": {"ab_swapped": False},
        },
        {
            "sample_id": "old-2",
            "source": "old.jsonl",
            "state": "human_pending",
            "fingerprint": "f2",
            "prompt": [{"role": "user", "content": "Why?"}],
            "response_a": "Because.",
            "response_b": "No.",
            "reference_label": None,
            "meta": {"ab_swapped": True, "tags": ["x"]},
        },
    ],
    "ai_labels": [{"sample_id": "old-1", "labeler_version": "emb-1", "labeler_name": "emb", "p_a": 0.91}],
    "routes": [
        {
            "sample_id": "old-1",
            "stage": "labeler",
            "to_judge": True,
            "to_human": False,
            "accept_judge": False,
            "reasons": ["high_confidence"],
        }
    ],
    "judge_verdicts": [
        {
            "sample_id": "old-1",
            "version": "j1",
            "model": "tiny",
            "p_a_original": 0.8,
            "p_a_swapped": 0.7,
            "principles": ["honest"],
            "critique": None,
            "parse_error": None,
        }
    ],
    "human_tasks": [{"sample_id": "old-2", "project_id": 3, "task_id": 2**40}],
    "human_labels": [
        {
            "annotation_id": "7",
            "sample_id": "old-2",
            "annotator": "a@x",
            "choice": "B",
            "reason": "shorter",
            "cancelled": False,
        }
    ],
    "final_labels": [
        {
            "sample_id": "old-1",
            "preferred": "A",
            "source": "judge",
            "labeler_version": "emb-1",
            "judge_version": "j1",
            "confidence": 0.91,
            "n_annotators": 0,
        }
    ],
    "quarantine": [
        {
            "record_id": "r1",
            "sample_id": "old.jsonl:3",
            "source": "old.jsonl",
            "row": 3,
            "field": "prompt",
            "reason": "is missing: add `prompt` with its text",
        }
    ],
    "watermarks": [{"name": "harvest:3", "value": "2026-11-30T12:00:00"}],
    "records": [{"kind": "labeler", "key": "active", "payload": {"version": "emb-1", "path": "/m"}}],
    "snapshots": [{"snapshot_id": "snap1", "n_rows": 1, "counts": {"judge": 1}, "path": "/s", "created_at": STAMP}],
}


def every_row(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != VERSION_TABLE]
        out = {
            n: sorted(map(tuple, conn.execute(select(Table(n, MetaData(), autoload_with=conn)))), key=repr)
            for n in names
        }
    engine.dispose()
    return {n: rows for n, rows in out.items() if rows}  # a table a later revision adds starts empty


def schema_differences(st: Store) -> list[Any]:
    with st._engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), md)


def test_a_new_database_is_built_at_head_and_matches_the_tables(store_url: str) -> None:
    st = Store(store_url)
    with st._read() as conn:
        assert current_revision(conn) == head_revision()
    # A column added to tables.py without a migration would show here (and be missing in old databases).
    assert schema_differences(st) == []
    st.close()


def test_a_database_made_before_migrations_is_adopted_without_data_loss(store_url: str) -> None:
    legacy_database(store_url)
    before = every_row(store_url)
    assert sum(map(len, before.values())) == sum(map(len, LEGACY_ROWS.values()))

    st = Store(store_url)
    with st._read() as conn:
        assert current_revision(conn) == head_revision()
    assert every_row(store_url) == before
    assert schema_differences(st) == []
    # The store reads what the old code wrote, and keeps working on it.
    assert [s.prompt for s in st.get_samples(["old-1"])] == ["Hi?"]
    assert st.get_samples(["old-2"])[0].prompt[0].content == "Why?"
    assert st.get_final_labels()["old-1"].confidence == 0.91
    assert st.get_human_tasks()["old-2"].task_id == 2**40
    assert st.get_watermark("harvest:3") == "2026-11-30T12:00:00"
    assert st.list_quarantine()[0].row == 3
    assert st.last_snapshot()["snapshot_id"] == "snap1"
    assert st.count_by_state() == {"labeled": 1, "human_pending": 1}
    assert st.ids_in_state(SampleState.human_pending) == ["old-2"]
    st.close()
    Store(store_url).close()  # a second open changes nothing
    assert every_row(store_url) == before


def _open(url: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    st = Store(url)
    out.put(st.count_by_state())
    st.close()


def test_several_workers_opening_a_new_database_at_once(store_url: str) -> None:
    n = 4
    results = results_of_processes(_open, store_url, n)
    assert results == [{}] * n
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == [head_revision()]
    engine.dispose()


def test_switching_a_new_sqlite_database_to_wal_waits_out_another_opener(tmp_path: Path) -> None:
    """SQLite answers "database is locked" at once, busy handler or not, when openers of a new database
    collide on the switch to WAL (one CI run lost a worker to it): the switch is retried, not raised."""
    path = tmp_path / "new.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    opener = sqlite3.connect(path, timeout=0, isolation_level=None)  # no busy handler: every try fails fast
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        opener.execute("PRAGMA journal_mode=WAL")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    _use_wal(opener.cursor())
    assert opener.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    opener.close()
    holder.close()

    # A lock that is never released still ends in the error, after the wait, not in a hang.
    stuck = tmp_path / "stuck.db"
    holder = sqlite3.connect(stuck, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    opener = sqlite3.connect(stuck, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _use_wal(opener.cursor(), wait_s=0.2)
    opener.close()
    holder.execute("COMMIT")
    holder.close()


def test_the_migrations_ship_in_the_wheel(tmp_path: Path) -> None:
    """Built the way `pip wheel --no-deps .` builds it, from the project file and the labeling package only."""
    repo = Path(__file__).resolve().parents[2]
    tree = tmp_path / "checkout"
    shutil.copytree(repo / "labeling", tree / "labeling", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, tree / name)
    build = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")],
        check=False,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "dist" / out.stdout.strip().splitlines()[-1]) as wheel:
        shipped = set(wheel.namelist())
    files = [p for p in MIGRATIONS_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    wanted = {str(p.relative_to(repo)) for p in files}
    assert {"labeling/store/migrations/env.py", "labeling/store/migrations/script.py.mako"} <= wanted
    assert wanted - shipped == set(), f"migration files missing from the wheel: {sorted(wanted - shipped)}"


NEXT_REVISION = """
import sqlalchemy as sa
from alembic import op

revision = "0002_sample_note"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("samples", sa.Column("note", sa.Text))


def downgrade() -> None:
    op.drop_column("samples", "note")
"""


def test_a_new_revision_reaches_a_database_that_already_has_data(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What create_all never did: a column added by a later release appears in a long-lived database."""
    st = Store(store_url)
    st.add_samples([Sample(sample_id="kept", prompt="p", response_a="a", response_b="b")], "before")
    st.close()
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "0002_sample_note.py").write_text(NEXT_REVISION.format(down=head_revision()))
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", migrations)
    head_revision.cache_clear()
    try:
        st = Store(store_url)
        with st._read() as conn:
            assert current_revision(conn) == "0002_sample_note"
            assert "note" in {c["name"] for c in inspect(conn).get_columns("samples")}
        assert st.get_samples(["kept"])[0].response_a in ("a", "b")
        st.close()
    finally:
        head_revision.cache_clear()
