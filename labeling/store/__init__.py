"""The store: ``from labeling.store import Store``. See ``labeling/store/store.py``.

Modules: ``tables`` (the schema), ``states`` (the per-sample state machine), ``store`` (the Store),
``migrate`` and ``migrations/`` (Alembic, run when a store opens), ``paging`` (keyset pages and id
ranges of a state), ``sql`` and ``rows`` (helpers).
"""

from labeling.store.paging import IdRange
from labeling.store.states import ALLOWED_TRANSITIONS, InvalidTransition, UnknownSampleError
from labeling.store.store import HumanTask, IngestResult, Store
from labeling.store.tables import (
    ai_labels,
    final_labels,
    human_labels,
    human_tasks,
    judge_verdicts,
    md,
    quarantine,
    records,
    routes,
    samples,
    snapshots,
    watermarks,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "HumanTask",
    "IdRange",
    "IngestResult",
    "InvalidTransition",
    "Store",
    "UnknownSampleError",
    "ai_labels",
    "final_labels",
    "human_labels",
    "human_tasks",
    "judge_verdicts",
    "md",
    "quarantine",
    "records",
    "routes",
    "samples",
    "snapshots",
    "watermarks",
]
