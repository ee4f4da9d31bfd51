"""The store's Label Studio bookkeeping: push intents, tasks by id, harvested annotations.

Functions over a ``Store`` (they join its open ``store.atomic()`` transaction like its own methods):
labeling/labelstudio/push.py, harvest.py and reconcile.py decide; this module only reads and writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Table, delete, select

from labeling.store.paging import keyset_pages
from labeling.store.sql import chunks, select_in, upsert
from labeling.store.states import unknown_samples
from labeling.store.store import HumanTask, Store
from labeling.store.tables import harvested_annotations, human_labels, human_tasks, push_intents, samples


@dataclass(frozen=True)
class HarvestedAnnotation:
    """A Label Studio annotation as a harvest read it."""

    annotation_id: str  # harvest.annotation_key(project_id, id)
    project_id: int
    task_id: int
    sample_id: str
    result_hash: str  # harvest.annotation_hash: what the annotation said
    ls_updated_at: str
    quarantined: bool  # its result failed validation: a quarantine record, not a label


# -- push intents -----------------------------------------------------------------------------


def open_intents(store: Store, project_id: int) -> list[str]:
    """Sample ids a push to this project was about to import when it stopped (empty after a clean push)."""
    query = select(push_intents.c.sample_id).where(push_intents.c.project_id == project_id)
    with store._read() as conn:
        return list(conn.execute(query.order_by(push_intents.c.sample_id)).scalars())


def record_intents(store: Store, push_id: str, project_id: int, sample_ids: Sequence[str]) -> None:
    rows = [{"sample_id": s, "push_id": push_id, "project_id": project_id} for s in sample_ids]
    with store._write() as conn:
        upsert(conn, push_intents, rows, ["push_id", "project_id"])


def finish_push(store: Store, push_id: str, tasks: Sequence[HumanTask]) -> None:
    """Record the imported tasks and close the push's intents, in one transaction."""
    with store.atomic() as conn:
        store.record_human_tasks(tasks)
        conn.execute(delete(push_intents).where(push_intents.c.push_id == push_id))


def resolve_intents(store: Store, sample_ids: Sequence[str], found: Sequence[HumanTask]) -> None:
    """After the duplicate check: record the tasks Label Studio holds and close those intents.

    Intents whose samples Label Studio does not hold were never imported; closing them leaves those
    samples unpushed, so the push imports them like any other.
    """
    with store.atomic() as conn:
        store.record_human_tasks(found)
        for chunk in chunks(list(sample_ids)):
            conn.execute(delete(push_intents).where(push_intents.c.sample_id.in_(chunk)))


def review_texts(store: Store, sample_ids: Sequence[str]) -> list[tuple[str, Any, str, str]]:
    """(sample_id, prompt as stored, response_a, response_b) in the order of ``sample_ids``: what a task shows.

    Four columns instead of whole samples: a push reads them for every task it imports.
    """
    cols = [samples.c.sample_id, samples.c.prompt, samples.c.response_a, samples.c.response_b]
    with store._read() as conn:
        rows = {r[0]: tuple(r) for r in select_in(conn, cols, samples.c.sample_id, list(sample_ids))}
    missing = [s for s in sample_ids if s not in rows]
    if missing:
        raise unknown_samples(missing)
    return [rows[s] for s in sample_ids]


# -- tasks ------------------------------------------------------------------------------------


def tasks_by_task_id(store: Store, project_id: int, task_ids: Sequence[int]) -> dict[int, HumanTask]:
    """The recorded tasks among these Label Studio task ids (index ix_human_tasks_project_task)."""
    rows = _in_project(store, human_tasks, project_id, task_ids)
    return {r.task_id: HumanTask(sample_id=r.sample_id, project_id=r.project_id, task_id=r.task_id) for r in rows}


def iter_project_tasks(store: Store, project_id: int, page_size: int = 1000) -> Iterator[HumanTask]:
    """The project's recorded tasks in task id order, read a page at a time (keyset, not OFFSET)."""

    def read(after: int | None) -> list[HumanTask]:
        query = select(human_tasks).where(human_tasks.c.project_id == project_id, human_tasks.c.task_id > (-1 if after is None else after))
        with store._read() as conn:
            rows = conn.execute(query.order_by(human_tasks.c.task_id).limit(page_size)).all()
        return [HumanTask(sample_id=r.sample_id, project_id=r.project_id, task_id=r.task_id) for r in rows]

    for page in keyset_pages(read, lambda task: task.task_id, page_size):
        yield from page


# -- harvested annotations --------------------------------------------------------------------


def record_harvested(store: Store, annotations: Sequence[HarvestedAnnotation]) -> None:
    cols = ["project_id", "task_id", "sample_id", "result_hash", "ls_updated_at", "quarantined"]
    with store._write() as conn:
        upsert(conn, harvested_annotations, [asdict(a) for a in annotations], cols)


def harvested_by_task(store: Store, project_id: int, task_ids: Sequence[int]) -> dict[int, list[HarvestedAnnotation]]:
    out: dict[int, list[HarvestedAnnotation]] = {}
    for r in _in_project(store, harvested_annotations, project_id, task_ids):
        out.setdefault(r.task_id, []).append(HarvestedAnnotation(
            annotation_id=r.annotation_id, project_id=r.project_id, task_id=r.task_id, sample_id=r.sample_id,
            result_hash=r.result_hash, ls_updated_at=r.ls_updated_at, quarantined=r.quarantined))
    return out


def _in_project(store: Store, table: Table, project_id: int, task_ids: Sequence[int]) -> list[Any]:
    """Rows of ``table`` for these task ids of one project, on its (project_id, task_id) index."""
    out: list[Any] = []
    with store._read() as conn:
        for chunk in chunks(list(dict.fromkeys(task_ids))):
            query = select(table).where(table.c.project_id == project_id, table.c.task_id.in_(chunk))
            out.extend(conn.execute(query).all())
    return out


def human_label_keys(store: Store, annotation_ids: Sequence[str]) -> set[str]:
    """Which of these annotation keys the store holds as human labels (harvested before revision 0002 too)."""
    with store._read() as conn:
        return {r[0] for r in select_in(conn, [human_labels.c.annotation_id], human_labels.c.annotation_id,
                                        list(annotation_ids))}
