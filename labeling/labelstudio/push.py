"""Turn human_pending samples into Label Studio tasks, idempotently.

Label Studio does not deduplicate imports. Before each import we ask the project which of the batch's
sample_ids it already holds and only record those, so a crash between the import and the store write
never duplicates a task on the rerun.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from labeling.labelstudio.client import LabelStudioClient
from labeling.schemas import Sample
from labeling.store import HumanTask, Store


@dataclass(frozen=True)
class PushResult:
    created: list[str]  # sample_ids imported now
    found: list[str]  # sample_ids whose task was already in the project (an earlier, unrecorded import)


def build_task(sample: Sample) -> dict[str, Any]:
    """One Label Studio task: the pair to compare and nothing else.

    No predictions, no confidences, no critique, no route reasons, in the data or the meta: annotators
    judge blind (issue 11), so every task, audits included, looks the same and nothing pre-ticks an
    answer. The store keeps the AI labels, verdicts and routes; harvest and agreement read them there.
    """
    return {"data": {"sample_id": sample.sample_id, "prompt": sample.prompt_text,
                     "response_a": sample.response_a, "response_b": sample.response_b}}


def push_samples(store: Store, client: LabelStudioClient, project_id: int, sample_ids: Sequence[str]) -> PushResult:
    """Create tasks for these samples (one bulk import) and record each task id in the store."""
    if not sample_ids:
        return PushResult(created=[], found=[])
    # Ask Label Studio which samples it already holds while the store reads run (network vs disk).
    with ThreadPoolExecutor(max_workers=1) as pool:
        lookup = pool.submit(client.task_ids_by_sample, project_id, sample_ids)
        samples = store.get_samples(sample_ids)
        already = lookup.result()
    if already:
        store.record_human_tasks([HumanTask(sample_id=s, project_id=project_id, task_id=t) for s, t in already.items()])
    samples = [s for s in samples if s.sample_id not in already]
    if not samples:
        return PushResult(created=[], found=sorted(already))
    payload = [build_task(s) for s in samples]
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
    store.record_human_tasks([HumanTask(sample_id=s.sample_id, project_id=project_id, task_id=int(t))
                              for s, t in zip(samples, task_ids, strict=True)])
    return PushResult(created=[s.sample_id for s in samples], found=sorted(already))


def push_pending(store: Store, client: LabelStudioClient, project_id: int, batch_size: int = 1000) -> PushResult:
    """Every human_pending sample without a task becomes one, a batch at a time; an outage leaves them pending."""
    created: list[str] = []
    found: list[str] = []
    while ids := store.unpushed_human_pending(limit=batch_size):
        result = push_samples(store, client, project_id, ids)
        created += result.created
        found += result.found
    return PushResult(created=created, found=found)
