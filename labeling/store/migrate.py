"""Schema migrations: every Store upgrades its database to the newest Alembic revision when it opens.

The revisions live in ``labeling/store/migrations/versions/`` (shipped in the wheel). To change the
schema, edit ``labeling/store/tables.py`` and add a revision file there whose ``down_revision`` is
the current head; tests/labeling/test_migrations.py fails until the two agree.

A database made before migrations existed (``create_all``, no version table) is upgraded in
place: the baseline revision creates only the tables and indexes that are missing.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Not alembic's default "alembic_version": the store may share a PostgreSQL database with an app
# (a Prefect server, say) that keeps its own Alembic history under that name.
VERSION_TABLE = "juryflow_schema_version"
_ADVISORY_LOCK_KEY = 7461239  # any constant; every juryflow process upgrading one database uses it


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for our migrations; ``connection``: the one env.py migrates on."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR / 'versions'}: reinstall juryflow")
    return head


def current_revision(conn: Connection) -> str | None:
    """The database's revision; None for an empty database or one made before migrations."""
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade_to_head(conn: Connection) -> None:
    """Upgrade inside the caller's (write) transaction, so a failed step leaves the schema as it was.

    Several workers may open one database at once: on PostgreSQL they queue on an advisory lock
    held to the end of the transaction, on SQLite on the write lock that BEGIN IMMEDIATE took; each
    later one then finds the database at head and changes nothing.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    if current_revision(conn) != head_revision():
        command.upgrade(alembic_config(conn), "head")
