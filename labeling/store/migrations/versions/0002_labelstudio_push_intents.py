"""Label Studio push intents, harvested annotations, and an index to find a project's tasks by id.

Revision ID: 0002_labelstudio_push_intents
Revises: 0001_baseline
Create Date: 2026-12-02

push_intents: samples a push is about to import, so that only a push that died between the import
and recording its task ids costs the next one a duplicate check in Label Studio (issue 15).
harvested_annotations: what each harvested annotation said (a hash) and when Label Studio last
changed it, so `juryflow labelstudio reconcile` can tell a changed or deleted annotation from it.
Annotations harvested before this revision have no row; reconcile reports them as such.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_labelstudio_push_intents"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "push_intents",
        sa.Column("sample_id", sa.String, primary_key=True),
        sa.Column("push_id", sa.String, nullable=False),
        sa.Column("project_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "harvested_annotations",
        sa.Column("annotation_id", sa.String, primary_key=True),
        sa.Column("project_id", sa.BigInteger, nullable=False),
        sa.Column("task_id", sa.BigInteger, nullable=False),
        sa.Column("sample_id", sa.String, nullable=False),
        sa.Column("result_hash", sa.String, nullable=False),
        sa.Column("ls_updated_at", sa.String, nullable=False),
        sa.Column("quarantined", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_harvested_annotations_project_task", "harvested_annotations", ["project_id", "task_id"])
    op.create_index("ix_human_tasks_project_task", "human_tasks", ["project_id", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_human_tasks_project_task", table_name="human_tasks")
    op.drop_index("ix_harvested_annotations_project_task", table_name="harvested_annotations")
    op.drop_table("harvested_annotations")
    op.drop_table("push_intents")
