"""Turn human_pending samples into Label Studio tasks, idempotently.

Label Studio does not deduplicate imports. Each push writes its samples down as push intents before
the import and closes them when it records the task ids. A push that finds intents left open (a crash
between the import and the store write) first asks Label Studio which of those samples it already holds
and records them, so the rerun never duplicates a task; a clean history costs no such lookup, which
filters a JSON field across the whole project (seconds at 50k tasks, issue 15).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labeling.labelstudio import reference
from labeling.labelstudio.client import LabelStudioClient
from labeling.schemas import ChatMessage, Sample, render_prompt
from labeling.store import HumanTask, Store
from labeling.store import labelstudio as ls_store


@dataclass(frozen=True)
class PushResult:
    created: list[str]  # sample_ids imported now
    found: list[str]  # sample_ids whose task was already in the project (an unfinished earlier push)


def build_task(sample: Sample) -> dict[str, Any]:
    """One Label Studio task: the pair to compare and nothing else.

    No predictions, no confidences, no critique, no route reasons, in the data or the meta: annotators
    judge blind (issue 11), so every task, audits included, looks the same and nothing pre-ticks an
    answer. The store keeps the AI labels, verdicts and routes; harvest and agreement read them there.
    Only `labelstudio.show_ai_reference` adds them, as text and never to an audit (reference.py).
    """
    return task_from_texts(sample.sample_id, sample.prompt, sample.response_a, sample.response_b)


def task_from_texts(sample_id: str, prompt: Any, response_a: str, response_b: str) -> dict[str, Any]:
    """build_task from the stored columns (a chat prompt as stored: a list of role/content objects)."""
    if not isinstance(prompt, str):
        prompt = [m if isinstance(m, ChatMessage) else ChatMessage(**m) for m in prompt]
    return {"data": {"sample_id": sample_id, "prompt": render_prompt(prompt),
                     "response_a": response_a, "response_b": response_b}}


def recover_unfinished_push(store: Store, client: LabelStudioClient, project_id: int) -> list[str]:
    """After a push that stopped between its import and recording the task ids: record what it imported.

    Only then is Label Studio asked which samples it holds (a filter on a JSON field of every task in the
    project), and only for that push's samples. Returns the sample ids found there.
    """
    unfinished = ls_store.open_intents(store, project_id)
    if not unfinished:
        return []
    found = client.task_ids_by_sample(project_id, unfinished)
    ls_store.resolve_intents(store, unfinished, [HumanTask(sample_id=s, project_id=project_id, task_id=t)
                                                 for s, t in found.items()])
    return sorted(found)


def push_samples(store: Store, client: LabelStudioClient, project_id: int, sample_ids: Sequence[str],
                 show_ai_reference: bool = False) -> PushResult:
    """Create tasks for these samples (one bulk import) and record each task id in the store.

    The samples are written down as this push's intents before the import and the intents closed with
    the task ids, so a crash in between is recovered by the next push (recover_unfinished_push) and never
    imports a sample twice. Pushes to one project must not run at once (the harvest-reviews deployment
    runs one at a time): a second push would take the first one's open intents for a crashed push's.
    """
    found = recover_unfinished_push(store, client, project_id)
    if found:  # those samples have their task now; the rest of the batch is still to import
        recorded = set(store.get_human_tasks(list(sample_ids)))
        sample_ids = [s for s in sample_ids if s not in recorded]
    if not sample_ids:
        return PushResult(created=[], found=found)
    push_id = uuid.uuid4().hex
    # In this thread: the store's open transaction (store.atomic) is a context variable, which a
    # worker thread would not see.
    ls_store.record_intents(store, push_id, project_id, list(sample_ids))
    texts = ls_store.review_texts(store, sample_ids)
    payload = [task_from_texts(*row) for row in texts]
    if show_ai_reference:  # review tasks carry the machines' answers as text; audit tasks get ""
        references = reference.reference_texts(store, [row[0] for row in texts])
        for task, row in zip(payload, texts, strict=True):
            task["data"][reference.FIELD] = references[row[0]]
    # Same endpoint as the SDK's projects.import_tasks, minus its per-value Python encoder.
    response = client.post_json(f"importing {len(payload)} tasks into project {project_id}",
                                f"/api/projects/{project_id}/import", payload, params={"return_task_ids": "true"})
    task_ids = list(response.get("task_ids") or [])
    if len(task_ids) != len(payload):
        raise RuntimeError(
            f"Label Studio at {client.url} returned {len(task_ids)} task ids for {len(payload)} imported tasks "
            f"in project {project_id}; rerun the push: it records the tasks that exist and imports only the rest"
        )
    # Label Studio creates the tasks in request order and returns their ids in that order.
    created = [row[0] for row in texts]
    ls_store.finish_push(store, push_id, [HumanTask(sample_id=s, project_id=project_id, task_id=int(t))
                                          for s, t in zip(created, task_ids, strict=True)])
    return PushResult(created=created, found=found)


def push_pending(store: Store, client: LabelStudioClient, project_id: int, batch_size: int = 1000,
                 show_ai_reference: bool = False) -> PushResult:
    """Every human_pending sample without a task becomes one, a batch at a time; an outage leaves them pending."""
    created: list[str] = []
    found: list[str] = []
    while ids := store.unpushed_human_pending(limit=batch_size):
        result = push_samples(store, client, project_id, ids, show_ai_reference)
        created += result.created
        found += result.found
    return PushResult(created=created, found=found)
