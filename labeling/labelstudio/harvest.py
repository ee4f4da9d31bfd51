"""Read annotations back from Label Studio and validate them.

The server does not check results against the labeling config, so we do, with the SDK's LabelInterface
over config.xml: a result that is not exactly one of our choices is quarantined with the reason and never
guessed. Votes are resolved into final
labels by ``labeling.merge.resolve_human_labels``, the same rule ``juryflow human import`` uses.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from labeling.labelstudio.client import LS_TIME_FORMAT, LabelStudioClient, filter_query, review_controls
from labeling.merge import HumanResolution, resolve_human_reviews
from labeling.records import ReviewOverlap, read_review_overlaps, write_review_overlap
from labeling.schemas import FinalLabel, HumanLabel, QuarantineRecord
from labeling.store import HumanTask, Store
from labeling.store import labelstudio as ls_store
from labeling.store.labelstudio import HarvestedAnnotation

# The task and annotation fields a harvest (and reconcile) reads; `include` also selects nested annotation fields.
ANNOTATED_TASK_FIELDS = "id,updated_at,annotations,result,completed_by,was_cancelled"
# Re-read a few seconds before the watermark: a task saved while we listed may carry a slightly older
# updated_at. Label writes are idempotent, so reading a task twice is harmless.
WATERMARK_OVERLAP = timedelta(seconds=5)


def watermark_name(project_id: int) -> str:
    return f"labelstudio:project:{project_id}:updated_at"


def annotation_key(project_id: int, annotation_id: int) -> str:
    return f"ls:{project_id}:{annotation_id}"


def annotation_hash(annotation: Mapping[str, Any]) -> str:
    """What an annotation says (its results, who, skipped or not): reconcile compares it with what we harvested."""
    said = {"result": annotation.get("result"), "completed_by": annotation.get("completed_by"),
            "was_cancelled": bool(annotation.get("was_cancelled"))}
    return hashlib.sha256(json.dumps(said, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


@dataclass
class HarvestBatch:
    labels: list[HumanLabel] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    sample_ids: set[str] = field(default_factory=set)
    newest: str | None = None  # largest task updated_at seen, the next watermark
    n_tasks: int = 0
    read: list[HarvestedAnnotation] = field(default_factory=list)  # every annotation, as reconcile checks it


def parse_annotation(project_id: int, sample_id: str, annotation: Mapping[str, Any]) -> HumanLabel | QuarantineRecord:
    """One Label Studio annotation as a HumanLabel, or a QuarantineRecord saying what is wrong with it."""
    ann_id = annotation.get("id")
    source = f"labelstudio:project {project_id}:annotation {ann_id}"

    def bad(where: str, why: str) -> QuarantineRecord:
        return QuarantineRecord(sample_id=sample_id, source=source, field=where, reason=why)

    annotator = f"ls-user:{annotation.get('completed_by')}"
    results = annotation.get("result") or []
    if not isinstance(results, list):
        return bad("result", f"expected a list of results, got {type(results).__name__}")
    names = review_controls()
    controls = {c.name: c for c in names.interface.controls}
    choice: str | None = None
    reason: str | None = None
    for i, item in enumerate(results):
        where = f"result[{i}]"
        if not isinstance(item, dict):
            return bad(where, f"expected an object, got {type(item).__name__}")
        name, to_name, kind = item.get("from_name"), item.get("to_name"), item.get("type")
        value = item.get("value") if isinstance(item.get("value"), dict) else {}
        control = controls.get(name) if isinstance(name, str) else None
        if control is None or kind != control.tag.lower():
            return bad(f"{where}.from_name", f"({name!r}, {kind!r}) is not in the labeling config")
        if to_name not in control.to_name:
            return bad(f"{where}.to_name", f"{to_name!r} is not {control.to_name[0]!r}")
        valid = not names.interface.validate_region(item, return_errors=True)
        if name == names.preference:
            picked = value.get("choices")
            # LabelInterface checks the values, not choice="single": one answer per annotation is ours to check.
            if not valid or not isinstance(picked, list) or len(picked) != 1:
                return bad(f"{where}.value.choices", f"{picked!r} is not exactly one of {list(names.choices)}")
            if choice is not None:
                return bad(where, "more than one preference result")
            choice = picked[0]
        elif name == names.reason:
            texts = value.get("text")
            if not valid or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                return bad(f"{where}.value.text", f"{texts!r} is not a list of strings")
            reason = "\n".join(texts) or None
        else:
            return bad(f"{where}.from_name", f"({name!r}, {kind!r}) is not one juryflow reads")
    cancelled = bool(annotation.get("was_cancelled"))
    if choice is None and not cancelled:
        return bad("result", f"no {names.preference!r} choice (one of {list(names.choices)}) in a submitted annotation")
    # HumanLabel.choice is required; a skipped annotation carries "tie" as a placeholder and is never counted.
    return HumanLabel(sample_id=sample_id, annotation_id=annotation_key(project_id, int(ann_id)),
                      annotator=annotator, choice=choice or "tie", reason=reason, cancelled=cancelled)


def parse_tasks(project_id: int, tasks: Iterable[Mapping[str, Any]], sample_by_task: Mapping[int, str]) -> HarvestBatch:
    """Validate the annotations of listed tasks; tasks juryflow did not push are quarantined."""
    batch = HarvestBatch()
    for task in tasks:
        batch.n_tasks += 1
        updated = _as_ls_time(task["updated_at"])
        batch.newest = max(batch.newest or updated, updated)
        sample_id = sample_by_task.get(int(task["id"]))
        if sample_id is None:
            batch.quarantine.append(QuarantineRecord(
                sample_id=f"labelstudio-task:{task['id']}", source=f"labelstudio:project {project_id}",
                field="task.id", reason=f"task {task['id']} was not pushed by juryflow; it is ignored",
            ))
            continue
        annotations = task.get("annotations") or []
        for annotation in annotations:
            parsed = parse_annotation(project_id, sample_id, annotation)
            (batch.labels if isinstance(parsed, HumanLabel) else batch.quarantine).append(parsed)
            batch.read.append(HarvestedAnnotation(
                annotation_id=annotation_key(project_id, int(annotation["id"])), project_id=project_id,
                task_id=int(task["id"]), sample_id=sample_id, result_hash=annotation_hash(annotation),
                ls_updated_at=_as_ls_time(annotation.get("updated_at") or task["updated_at"]),
                quarantined=not isinstance(parsed, HumanLabel)))
        if annotations:
            batch.sample_ids.add(sample_id)
    return batch


def fetch_updated_tasks(client: LabelStudioClient, project_id: int, watermark: str | None) -> list[dict[str, Any]]:
    """Tasks updated since the watermark (an annotation create/update bumps its task's updated_at).

    Only the fields the harvest reads are requested: full tasks (data, predictions) cost ~6x more.
    """
    since = harvest_window_start(watermark)
    flt = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
           "value": since.strftime(LS_TIME_FORMAT)}
    params = {"project": project_id, "fields": "all", "include": ANNOTATED_TASK_FIELDS,
              "query": filter_query(flt)}
    return list(client.list_json(f"listing tasks of project {project_id}", "/api/tasks", params, key="tasks"))


def harvest_window_start(watermark: str | None) -> datetime:
    """Tasks updated after this are read by the next harvest (the watermark less the overlap)."""
    if not watermark:
        return datetime(1970, 1, 1, tzinfo=UTC)
    return datetime.strptime(watermark, LS_TIME_FORMAT).replace(tzinfo=UTC) - WATERMARK_OVERLAP


def ls_datetime(value: Any) -> datetime:
    """A Label Studio timestamp (text or datetime) as an aware UTC datetime."""
    return datetime.strptime(_as_ls_time(value), LS_TIME_FORMAT).replace(tzinfo=UTC)


def _as_ls_time(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(LS_TIME_FORMAT)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC).strftime(LS_TIME_FORMAT)


@dataclass(frozen=True)
class HarvestPlan:
    """What a harvest decided, before any of it is written."""

    finals: list[FinalLabel]
    reopen: dict[str, ReviewOverlap]  # split votes going back to Label Studio for one more annotator
    outcomes: Counter[str]


@dataclass(frozen=True)
class HarvestSummary:
    tasks_read: int
    human_labels: int
    quarantined: int
    final_labels: int
    reopened_for_tie: int
    ties: int
    waiting: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def annotators_wanted(sample_id: str, annotators_per_task: int, raised: Mapping[str, ReviewOverlap]) -> int:
    """How many annotators a sample waits for: the project's overlap, or more once a split vote raised it."""
    return max(annotators_per_task, raised[sample_id].overlap if sample_id in raised else 0)


def plan_harvest(resolutions: Sequence[HumanResolution], tasks: Mapping[str, HumanTask]) -> HarvestPlan:
    """Final labels for decided samples and ties; one more annotator for each split vote (``needs_more``)."""
    reopen = {r.sample_id: ReviewOverlap(overlap=r.n_annotators + 1, task_id=tasks[r.sample_id].task_id)
              for r in resolutions if r.outcome == "needs_more"}
    return HarvestPlan(finals=[r.final for r in resolutions if r.final is not None], reopen=reopen,
                       outcomes=Counter(r.outcome for r in resolutions))


def harvest_project(store: Store, client: LabelStudioClient, project_id: int, *, annotators_per_task: int,
                    max_annotators_on_tie: int) -> tuple[HarvestSummary, list[QuarantineRecord]]:
    """Read annotations updated since the watermark, validate, resolve and store them.

    Labels are stored before votes are resolved (resolution reads every annotation of a sample, not only
    this batch's); the watermark moves only after the final labels are written, so a crash re-reads
    (idempotently) rather than loses. Returns the counts and the quarantined annotations.
    """
    mark = watermark_name(project_id)
    listed = fetch_updated_tasks(client, project_id, store.get_watermark(mark))
    # Only the listed tasks' records: the project may hold tens of thousands.
    recorded = ls_store.tasks_by_task_id(store, project_id, [int(t["id"]) for t in listed])
    tasks = {t.sample_id: t for t in recorded.values()}
    batch = parse_tasks(project_id, listed, {task_id: t.sample_id for task_id, t in recorded.items()})
    with store.atomic():
        store.record_human_labels(batch.labels)
        store.add_quarantine(batch.quarantine)
        ls_store.record_harvested(store, batch.read)
    raised = read_review_overlaps(store)
    resolutions = resolve_human_reviews(store, sorted(batch.sample_ids), max_annotators_on_tie,
                                        wanted=lambda sid: annotators_wanted(sid, annotators_per_task, raised))
    plan = plan_harvest(resolutions, tasks)
    # Ask Label Studio for one more annotator on each split vote before recording that we asked.
    for overlap in plan.reopen.values():
        client.reopen_task(overlap.task_id, overlap.overlap)
    with store.atomic():
        for sample_id, overlap in plan.reopen.items():
            write_review_overlap(store, sample_id, overlap)
        store.record_final_labels(plan.finals)
        if batch.newest:
            store.set_watermark(mark, batch.newest)
    summary = HarvestSummary(tasks_read=batch.n_tasks, human_labels=len(batch.labels), quarantined=len(batch.quarantine),
                             final_labels=len(plan.finals), reopened_for_tie=len(plan.reopen),
                             ties=plan.outcomes["tie"], waiting=plan.outcomes["waiting"])
    return summary, batch.quarantine
