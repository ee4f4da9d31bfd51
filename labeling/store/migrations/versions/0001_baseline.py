"""Baseline: the schema Store's create_all made before migrations existed.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-01

Creates each table and index only when it is missing, so a database made by that create_all is
adopted as it is (no data touched) and a new one is built from scratch. The column lists are a
frozen copy, not imports of labeling/store/tables.py: later revisions change the schema, never this.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _tables() -> dict[str, list[sa.Column]]:
    """Fresh Column objects per call: a Column belongs to the one table it is created with."""
    col, s = sa.Column, sa.String
    return {
        "ai_labels": [
            col("sample_id", s, primary_key=True),
            col("labeler_version", s, primary_key=True),
            col("labeler_name", s, nullable=False),
            col("p_a", sa.Float, nullable=False),
        ],
        "final_labels": [
            col("sample_id", s, primary_key=True),
            col("preferred", s, nullable=False),
            col("source", s, nullable=False),
            col("labeler_version", s),
            col("judge_version", s),
            col("confidence", sa.Float),
            col("n_annotators", sa.Integer, nullable=False),
        ],
        "human_labels": [
            col("annotation_id", s, primary_key=True),
            col("sample_id", s, nullable=False),
            col("annotator", s, nullable=False),
            col("choice", s, nullable=False),
            col("reason", sa.Text),
            col("cancelled", sa.Boolean, nullable=False),
        ],
        "human_tasks": [
            col("sample_id", s, primary_key=True),
            col("project_id", sa.BigInteger, nullable=False),
            col("task_id", sa.BigInteger, nullable=False),
        ],
        "judge_verdicts": [
            col("sample_id", s, primary_key=True),
            col("version", s, primary_key=True),
            col("model", s, nullable=False),
            col("p_a_original", sa.Float),
            col("p_a_swapped", sa.Float),
            col("principles", JSON_TYPE, nullable=False),
            col("critique", sa.Text),
            col("parse_error", sa.Text),
        ],
        "quarantine": [
            col("record_id", s, primary_key=True),
            col("sample_id", s, nullable=False),
            col("source", s, nullable=False),
            col("row", sa.Integer),
            col("field", s, nullable=False),
            col("reason", sa.Text, nullable=False),
        ],
        "records": [
            col("kind", s, primary_key=True),
            col("key", s, primary_key=True),
            col("payload", JSON_TYPE, nullable=False),
        ],
        "routes": [
            col("sample_id", s, primary_key=True),
            col("stage", s, primary_key=True),
            col("to_judge", sa.Boolean, nullable=False),
            col("to_human", sa.Boolean, nullable=False),
            col("accept_judge", sa.Boolean, nullable=False),
            col("reasons", JSON_TYPE, nullable=False),
        ],
        "samples": [
            col("sample_id", s, primary_key=True),
            col("source", s, nullable=False),
            col("state", s, nullable=False),
            col("fingerprint", s, nullable=False),
            col("prompt", JSON_TYPE, nullable=False),
            col("response_a", sa.Text, nullable=False),
            col("response_b", sa.Text, nullable=False),
            col("reference_label", s),
            col("meta", JSON_TYPE, nullable=False),
        ],
        "snapshots": [
            col("snapshot_id", s, primary_key=True),
            col("n_rows", sa.Integer, nullable=False),
            col("counts", JSON_TYPE, nullable=False),
            col("path", sa.Text, nullable=False),
            col("created_at", sa.DateTime, nullable=False),
        ],
        "watermarks": [col("name", s, primary_key=True), col("value", sa.Text, nullable=False)],
    }


INDEXES = {  # name: (table, column), as create_all named them from index=True
    "ix_samples_state": ("samples", "state"),
    "ix_human_labels_sample_id": ("human_labels", "sample_id"),
    "ix_snapshots_created_at": ("snapshots", "created_at"),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, columns in _tables().items():
        if name not in existing:
            op.create_table(name, *columns, sa.Column("updated_at", sa.DateTime, nullable=False))
    for index, (table, column) in INDEXES.items():
        present = {ix["name"] for ix in inspector.get_indexes(table)} if table in existing else set()
        if index not in present:
            op.create_index(index, table, [column])


def downgrade() -> None:
    for index, (table, _column) in INDEXES.items():
        op.drop_index(index, table_name=table)
    for name in _tables():
        op.drop_table(name)
