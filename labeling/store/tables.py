"""The store's tables, as SQLAlchemy Core metadata: what the code reads and writes today.

A change here needs a migration in ``labeling/store/migrations/versions/`` too:
tests/labeling/test_migrations.py fails when the migrated schema and this metadata differ.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Float, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

JSON_TYPE = JSON().with_variant(JSONB(), "postgresql")  # JSONB: has equality, for IS DISTINCT FROM
md = MetaData()


def _table(name: str, *cols: Column) -> Table:
    return Table(name, md, *cols, Column("updated_at", DateTime, nullable=False))


samples = _table(
    "samples",
    Column("sample_id", String, primary_key=True),
    Column("source", String, nullable=False),
    Column("state", String, nullable=False),
    Column("fingerprint", String, nullable=False),
    Column("prompt", JSON_TYPE, nullable=False),
    Column("response_a", Text, nullable=False),
    Column("response_b", Text, nullable=False),
    Column("reference_label", String),
    Column("meta", JSON_TYPE, nullable=False),
    Index("ix_samples_state_sample_id", "state", "sample_id"),  # a state's ids in id order: keyset pages
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
    Column("reasons", JSON_TYPE, nullable=False),
)
judge_verdicts = _table(
    "judge_verdicts",
    Column("sample_id", String, primary_key=True),
    Column("version", String, primary_key=True),
    Column("model", String, nullable=False),
    Column("p_a_original", Float),
    Column("p_a_swapped", Float),
    Column("principles", JSON_TYPE, nullable=False),
    Column("critique", Text),
    Column("parse_error", Text),
)
human_tasks = _table(
    "human_tasks",
    Column("sample_id", String, primary_key=True),
    Column("project_id", BigInteger, nullable=False),
    Column("task_id", BigInteger, nullable=False),
    Index("ix_human_tasks_project_task", "project_id", "task_id"),  # harvest and reconcile look tasks up by id
)
# Samples a Label Studio push is about to import: written before the import, deleted with the task ids it
# records. A row left over means a push died in between, and only then does the next push ask Label Studio
# which of these samples it already holds (labeling/labelstudio/push.py).
push_intents = _table(
    "push_intents",
    Column("sample_id", String, primary_key=True),
    Column("push_id", String, nullable=False),
    Column("project_id", BigInteger, nullable=False),
)
# Every Label Studio annotation a harvest read, with a hash of what it said: reconcile tells a changed or
# deleted annotation from the one we harvested (labeling/labelstudio/reconcile.py).
harvested_annotations = _table(
    "harvested_annotations",
    Column("annotation_id", String, primary_key=True),  # harvest.annotation_key: ls:<project>:<annotation>
    Column("project_id", BigInteger, nullable=False),
    Column("task_id", BigInteger, nullable=False),
    Column("sample_id", String, nullable=False),
    Column("result_hash", String, nullable=False),
    Column("ls_updated_at", String, nullable=False),  # the annotation's updated_at in Label Studio
    Column("quarantined", Boolean, nullable=False),
    Index("ix_harvested_annotations_project_task", "project_id", "task_id"),
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
    Column("payload", JSON_TYPE, nullable=False),
)
snapshots = _table(
    "snapshots",
    Column("snapshot_id", String, primary_key=True),
    Column("n_rows", Integer, nullable=False),
    Column("counts", JSON_TYPE, nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", DateTime, nullable=False, index=True),
)
