"""An index on samples (state, sample_id), in place of the one on state alone.

Revision ID: 0003_samples_state_id_index
Revises: 0002_labelstudio_push_intents
Create Date: 2026-12-02

label_batch pages through a state's ids in id order (labeling/store/paging.py, issue 15). With an
index on state alone, SQLite sorts every id in the state for each page: 100k samples took 2.9 s to
page, growing with the square of the batch. On (state, sample_id) each page is one index range
(0.6 s). The composite index serves the state-only queries (counts by state) as well, so the old
one goes: one index less to update on every state change.
"""

from __future__ import annotations

from alembic import op

revision = "0003_samples_state_id_index"
down_revision = "0002_labelstudio_push_intents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_samples_state_sample_id", "samples", ["state", "sample_id"])
    op.drop_index("ix_samples_state", table_name="samples")


def downgrade() -> None:
    op.create_index("ix_samples_state", "samples", ["state"])
    op.drop_index("ix_samples_state_sample_id", table_name="samples")
