"""labeling/store/labelstudio.py: push intents, tasks by id, harvested annotations (no Label Studio needed)."""

from __future__ import annotations

import pytest

from labeling.labelstudio.harvest import annotation_hash
from labeling.labelstudio.push import build_task, task_from_texts
from labeling.labelstudio.reconcile import ReconcileSummary
from labeling.schemas import HumanLabel
from labeling.store import HumanTask, Store, UnknownSampleError
from labeling.store import labelstudio as ls_store
from labeling.store.labelstudio import HarvestedAnnotation
from tests.labeling.conftest import make_samples


def test_intents_stay_open_until_the_push_records_its_tasks(store: Store) -> None:
    ls_store.record_intents(store, "p1", 7, ["a", "b"])
    ls_store.record_intents(store, "p2", 8, ["c"])
    assert ls_store.open_intents(store, 7) == ["a", "b"]
    ls_store.finish_push(store, "p1", [HumanTask(sample_id="a", project_id=7, task_id=1),
                                      HumanTask(sample_id="b", project_id=7, task_id=2)])
    assert ls_store.open_intents(store, 7) == [] and ls_store.open_intents(store, 8) == ["c"]
    assert sorted(store.get_human_tasks()) == ["a", "b"]
    ls_store.resolve_intents(store, ["c"], [])  # checked: Label Studio never got it
    assert ls_store.open_intents(store, 8) == [] and "c" not in store.get_human_tasks()


def test_a_crash_while_recording_leaves_the_intents_open(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ls_store.record_intents(store, "p1", 7, ["a"])
    real_record = Store.record_human_tasks

    def record_then_die(self, tasks):
        real_record(self, tasks)
        raise RuntimeError("killed after recording the tasks, before closing the intents")

    monkeypatch.setattr(Store, "record_human_tasks", record_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        ls_store.finish_push(store, "p1", [HumanTask(sample_id="a", project_id=7, task_id=1)])
    # One transaction: the tasks are not recorded without the intents closed, or the other way round.
    assert ls_store.open_intents(store, 7) == ["a"] and store.get_human_tasks() == {}


def test_project_tasks_page_in_task_id_order_and_stay_in_their_project(store: Store) -> None:
    store.record_human_tasks([HumanTask(sample_id=f"s{i}", project_id=1 + i % 2, task_id=100 - i) for i in range(9)])
    assert [t.task_id for t in ls_store.iter_project_tasks(store, 1, page_size=2)] == [92, 94, 96, 98, 100]
    assert len(list(ls_store.iter_project_tasks(store, 2, page_size=4))) == 4  # a full last page, then none
    assert {t: h.sample_id for t, h in ls_store.tasks_by_task_id(store, 1, [100, 99, 5]).items()} == {100: "s0"}


def test_harvested_annotations_by_task_and_legacy_label_keys(store: Store) -> None:
    row = HarvestedAnnotation(annotation_id="ls:1:5", project_id=1, task_id=10, sample_id="s", result_hash="h",
                              ls_updated_at="2026-12-02T00:00:00.000000Z", quarantined=False)
    ls_store.record_harvested(store, [row])
    ls_store.record_harvested(store, [row])  # idempotent
    assert ls_store.harvested_by_task(store, 1, [10, 11]) == {10: [row]}
    assert ls_store.harvested_by_task(store, 2, [10]) == {}
    # Annotation keys held as human labels: the one recorded, not the one only harvested.
    (sample,) = make_samples(1)
    store.add_samples([sample], source="t")
    store.record_human_labels([HumanLabel(sample_id=sample.sample_id, annotation_id="ls:1:6", annotator="a", choice="A")])
    assert ls_store.human_label_keys(store, ["ls:1:5", "ls:1:6", "ls:1:7"]) == {"ls:1:6"}


def test_review_texts_keep_the_order_and_name_unknown_samples(store: Store) -> None:
    samples = make_samples(3, chat_every=2)
    store.add_samples(samples, source="t")
    rows = ls_store.review_texts(store, [s.sample_id for s in reversed(samples)])
    assert [task_from_texts(*r) for r in rows] == [build_task(s) for s in reversed(samples)]
    with pytest.raises(UnknownSampleError, match="nope"):
        ls_store.review_texts(store, ["nope"])


def test_annotation_hash_sees_what_an_annotation_says_only() -> None:
    said = {"id": 1, "result": [{"value": {"choices": ["A"]}}], "completed_by": 3, "updated_at": "t1"}
    assert annotation_hash(said) == annotation_hash({**said, "id": 2, "updated_at": "t2"})
    assert annotation_hash(said) != annotation_hash({**said, "result": [{"value": {"choices": ["B"]}}]})
    assert annotation_hash(said) != annotation_hash({**said, "was_cancelled": True})


def test_the_summary_line_keeps_its_shape() -> None:
    summary = ReconcileSummary(project_id=1, pushed=3, in_labelstudio=2, annotations=4, harvested=3)
    summary.kinds.update({("missing_in_labelstudio", False): 1, ("not_harvested", True): 1})
    assert summary.line() == ("reconcile: 1 unexplained (pushed 3, in Label Studio 2, annotations 4, harvested 3, "
                              "explained 1)")
    assert summary.by_kind() == [("missing_in_labelstudio", 1, 0), ("not_harvested", 0, 1)]
