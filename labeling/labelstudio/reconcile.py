"""Labels expected against labels received: compare a Label Studio project with the store.

Walks the project's tasks and the store's recorded tasks side by side, both in task id order and a
page at a time (keyset paging on both sides, so memory stays flat at 50k tasks), and reports every
difference:

- ``missing_in_labelstudio``: a task we pushed is gone from the project;
- ``not_pushed``: a task in the project that no push recorded (someone imported it by hand);
- ``duplicate_task``: a second task for a sample whose task is recorded (an import that ran twice);
- ``unfinished_push``: a task imported by a push that stopped before recording it;
- ``not_harvested``: an annotation the store has not read;
- ``changed``: an annotation that differs from what the harvest read;
- ``vanished``: a harvested annotation deleted in Label Studio (its label stays in the store);
- ``harvested_before_hashes``: harvested before the store kept what annotations said (revision 0002).

A difference is explained when the next run resolves it by itself, and says how: the next push records
an unfinished push's tasks; the next harvest reads tasks updated after its watermark, so an annotation
added or changed since then is only late. Everything else is unexplained.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labeling.labelstudio.client import LabelStudioClient, filter_query
from labeling.labelstudio.harvest import (
    ANNOTATED_TASK_FIELDS,
    annotation_hash,
    annotation_key,
    harvest_window_start,
    ls_datetime,
    watermark_name,
)
from labeling.store import HumanTask, Store
from labeling.store import labelstudio as ls_store

EXPLAINED_BY_NEXT_HARVEST = "task updated after the last harvest: the next harvest reads it"


@dataclass(frozen=True)
class Difference:
    kind: str
    explained: bool
    task_id: int
    why: str  # one line: what differs and, if explained, what resolves it
    sample_id: str | None = None
    annotation_id: int | None = None

    def line(self) -> str:
        where = f"task {self.task_id}" + (f" annotation {self.annotation_id}" if self.annotation_id is not None else "")
        sample = f" sample {self.sample_id}" if self.sample_id else ""
        return f"{'explained' if self.explained else 'UNEXPLAINED'} {self.kind}: {where}{sample}: {self.why}"


@dataclass
class ReconcileSummary:
    project_id: int
    pushed: int = 0  # tasks the store recorded for the project
    in_labelstudio: int = 0  # tasks in the project
    annotations: int = 0  # annotations on recorded tasks
    harvested: int = 0  # of those, read by a harvest exactly as they are now
    kinds: Counter[tuple[str, bool]] = field(default_factory=Counter)  # (kind, explained) -> count

    @property
    def unexplained(self) -> int:
        return sum(n for (_, explained), n in self.kinds.items() if not explained)

    @property
    def explained(self) -> int:
        return sum(n for (_, explained), n in self.kinds.items() if explained)

    def by_kind(self) -> list[tuple[str, int, int]]:
        """(kind, unexplained, explained), for the kinds seen."""
        kinds = sorted({k for k, _ in self.kinds})
        return [(k, self.kinds[(k, False)], self.kinds[(k, True)]) for k in kinds]

    def line(self) -> str:
        """The last line `juryflow labelstudio reconcile` prints (scripts read it; keep its shape)."""
        return (f"reconcile: {self.unexplained} unexplained (pushed {self.pushed}, in Label Studio {self.in_labelstudio}, "
                f"annotations {self.annotations}, harvested {self.harvested}, explained {self.explained})")

    def as_dict(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "unexplained": self.unexplained, "explained": self.explained,
                "pushed": self.pushed, "in_labelstudio": self.in_labelstudio, "annotations": self.annotations,
                "harvested": self.harvested,
                "kinds": {f"{k}{'' if e else ':unexplained'}": n for (k, e), n in sorted(self.kinds.items())}}


def reconcile_project(store: Store, client: LabelStudioClient, project_id: int,
                      report: Callable[[Difference], None] = lambda d: None, page_size: int = 1000) -> ReconcileSummary:
    """Compare the project with the store; ``report`` gets each difference as it is found."""
    summary = ReconcileSummary(project_id=project_id)
    window = harvest_window_start(store.get_watermark(watermark_name(project_id)))
    unfinished = set(ls_store.open_intents(store, project_id))

    def found(diff: Difference) -> None:
        summary.kinds[(diff.kind, diff.explained)] += 1
        report(diff)

    recorded = _Lookahead(ls_store.iter_project_tasks(store, project_id, page_size))
    for page in _labelstudio_pages(client, project_id, page_size):
        summary.in_labelstudio += len(page)
        ours = {t.task_id: t for t in recorded.take_through(int(page[-1]["id"]))}
        listed = {int(t["id"]) for t in page}
        for task in ours.values():
            if task.task_id not in listed:
                found(_missing(task))
        summary.pushed += len(ours)
        foreign = [int(t["id"]) for t in page if int(t["id"]) not in ours]
        for diff in _classify_foreign(store, client, project_id, foreign, unfinished):
            found(diff)
        for diff in _compare_annotations(store, summary, project_id, [t for t in page if int(t["id"]) in ours],
                                         ours, window):
            found(diff)
    for task in recorded.rest():
        summary.pushed += 1
        found(_missing(task))
    return summary


def _missing(task: HumanTask) -> Difference:
    return Difference("missing_in_labelstudio", False, task.task_id, "pushed and recorded, but not in the project "
                      "(deleted in Label Studio?); its sample waits for a human label that cannot come",
                      sample_id=task.sample_id)


def _labelstudio_pages(client: LabelStudioClient, project_id: int, page_size: int) -> Iterator[list[dict[str, Any]]]:
    """The project's tasks with their annotations, in id order, one page per request (keyset on the id)."""
    after = 0
    while True:
        flt = {"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": after}
        params = {"project": project_id, "fields": "all", "include": ANNOTATED_TASK_FIELDS, "page": 1,
                  "page_size": page_size, "query": filter_query(flt)}
        page = client.get_json(f"listing tasks of project {project_id} after task {after}", "/api/tasks", params)["tasks"]
        if page:
            yield page
        if len(page) < page_size:
            return
        after = int(page[-1]["id"])


def _classify_foreign(store: Store, client: LabelStudioClient, project_id: int, task_ids: Sequence[int],
                      unfinished: set[str]) -> Iterator[Difference]:
    """Tasks in the project the store has not recorded: an unfinished push's, a duplicate, or not ours."""
    if not task_ids:
        return
    params = {"project": project_id, "fields": "task_only", "include": "id,data", "page": 1, "page_size": len(task_ids),
              "query": json.dumps({"selectedItems": {"all": False, "included": list(task_ids)}})}
    tasks = client.get_json(f"reading {len(task_ids)} unrecorded tasks of project {project_id}", "/api/tasks",
                            params)["tasks"]
    sample_of = {int(t["id"]): (t.get("data") or {}).get("sample_id") for t in tasks}
    recorded = store.get_human_tasks([s for s in sample_of.values() if isinstance(s, str)])
    for task_id in task_ids:
        sample_id = sample_of.get(task_id)
        if not isinstance(sample_id, str):
            yield Difference("not_pushed", False, task_id, "no sample_id in its data: not a juryflow task; "
                             "the harvest ignores it (delete it, or import it through juryflow)")
        elif sample_id in unfinished:
            yield Difference("unfinished_push", True, task_id, "imported by a push that stopped before recording "
                             "it: the next push records it", sample_id=sample_id)
        elif sample_id in recorded and recorded[sample_id].project_id == project_id:
            yield Difference("duplicate_task", False, task_id, f"a second task for this sample (recorded: task "
                             f"{recorded[sample_id].task_id}); its annotations are never harvested: delete it",
                             sample_id=sample_id)
        else:
            yield Difference("not_pushed", False, task_id, "no push recorded this task: the harvest ignores it",
                             sample_id=sample_id)


def _compare_annotations(store: Store, summary: ReconcileSummary, project_id: int, page: Sequence[dict[str, Any]],
                         ours: dict[int, HumanTask], window: datetime) -> Iterator[Difference]:
    """Each recorded task's annotations in Label Studio against what the harvest read."""
    harvested = ls_store.harvested_by_task(store, project_id, [int(t["id"]) for t in page])
    keys = [annotation_key(project_id, int(a["id"])) for t in page for a in t.get("annotations") or []]
    read = {h.annotation_id for hs in harvested.values() for h in hs}
    legacy = ls_store.human_label_keys(store, [k for k in keys if k not in read])
    for task in page:
        task_id = int(task["id"])
        sample_id = ours[task_id].sample_id
        late = ls_datetime(task["updated_at"]) > window  # what the next harvest's filter reads
        by_key = {h.annotation_id: h for h in harvested.get(task_id, [])}
        for annotation in task.get("annotations") or []:
            summary.annotations += 1
            ann_id = int(annotation["id"])
            key = annotation_key(project_id, ann_id)
            seen = by_key.pop(key, None)
            if seen is None and key in legacy:
                yield Difference("harvested_before_hashes", True, task_id, "harvested before the store kept what "
                                 "annotations said (store revision 0002): a later change to it cannot be told",
                                 sample_id, ann_id)
            elif seen is None:
                why = EXPLAINED_BY_NEXT_HARVEST if late else "the store never read it and no harvest will: " \
                      "the task is older than the harvest watermark"
                yield Difference("not_harvested", late, task_id, why, sample_id, ann_id)
            elif seen.result_hash != annotation_hash(annotation):
                why = EXPLAINED_BY_NEXT_HARVEST if late else "differs from what the harvest read, and the task " \
                      "is older than the harvest watermark, so no harvest will read it again"
                yield Difference("changed", late, task_id, why, sample_id, ann_id)
            else:
                summary.harvested += 1
        for gone in by_key.values():
            ann_id = int(gone.annotation_id.rsplit(":", 1)[1])
            yield Difference("vanished", False, task_id, "harvested, then deleted in Label Studio: its label "
                             "stays in the store", sample_id, ann_id)


class _Lookahead:
    """Take items from a sorted iterator up to a key, leaving the next one for later."""

    def __init__(self, items: Iterator[HumanTask]):
        self._items = items
        self._next: HumanTask | None = next(items, None)

    def take_through(self, task_id: int) -> Iterator[HumanTask]:
        while self._next is not None and self._next.task_id <= task_id:
            yield self._next
            self._next = next(self._items, None)

    def rest(self) -> Iterator[HumanTask]:
        yield from self.take_through(2**63)


def markdown_report(summary: ReconcileSummary, shown: Sequence[Difference], limit: int) -> str:
    """The summary as markdown (the harvest flow's `labelstudio-reconcile` artifact), with the first differences."""
    lines = [f"**{summary.line()}**", "", f"Label Studio project {summary.project_id}.", ""]
    if summary.kinds:
        lines += ["| difference | unexplained | explained |", "|---|---|---|"]
        lines += [f"| {kind} | {u} | {e} |" for kind, u, e in summary.by_kind()]
        total = summary.unexplained + summary.explained
        more = f" (the first {len(shown)} of {total}; `juryflow labelstudio reconcile` lists all)" if total > limit else ""
        lines += ["", f"Differences{more}:", ""]
        lines += [f"- `{d.line()}`" for d in shown]
    else:
        lines.append("No differences: every pushed task is in Label Studio and every annotation was harvested as it is.")
    return "\n".join(lines)
