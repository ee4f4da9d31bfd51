"""Alembic's entry point for juryflow's store; Store(url) runs it on its own open transaction."""

from __future__ import annotations

from alembic import context

from labeling.store.migrate import VERSION_TABLE
from labeling.store.tables import md

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "juryflow's migrations run when a store opens: call labeling.store.Store(url) "
        "instead of the alembic command line"
    )
context.configure(connection=connection, target_metadata=md, version_table=VERSION_TABLE)
with context.begin_transaction():  # joins the Store's transaction when one is open
    context.run_migrations()
