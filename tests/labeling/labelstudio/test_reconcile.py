"""`juryflow labelstudio reconcile` and push intents, against the real session Label Studio (see conftest.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from juryflow.cli import app
from labeling.labelstudio.client import LS_TIME_FORMAT, LabelStudioClient, choice_result
from labeling.labelstudio.harvest import watermark_name
from labeling.labelstudio.reconcile import reconcile_project
from labeling.store import labelstudio as ls_store
from tasks import resources
from tasks.review import ensure_project, harvest, push_pending
from tests.labeling.labelstudio.conftest import annotate, make_samples, seed_human_pending

pytestmark = [pytest.mark.integration, pytest.mark.requires_labelstudio]


def _reconcile_cli(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["labelstudio", "reconcile", *args])
    return result.exit_code, result.output.strip().splitlines()


def _kinds(client: LabelStudioClient, project_id: int) -> Counter[tuple[str, bool]]:
    return reconcile_project(resources.store(), client, project_id).kinds


def test_reconcile_reports_each_kind_of_difference_and_exits_by_what_is_unexplained(ls_env, ls_admin, annotators):
    seed_human_pending(make_samples(5))
    project_id = ensure_project.fn()
    push_pending.fn(project_id, batch_size=2)  # several pushes, and reconcile pages of 2 below
    tasks = resources.store().get_human_tasks()
    changed = annotate(ls_admin, tasks["s0000"].task_id, annotators[0], "A")
    deleted = annotate(ls_admin, tasks["s0001"].task_id, annotators[0], "B")
    harvest.fn(project_id)
    code, lines = _reconcile_cli()
    assert (code, lines) == (0, ["reconcile: 0 unexplained (pushed 5, in Label Studio 5, annotations 2, harvested 2, "
                                 "explained 0)"])

    ls_admin.sdk.tasks.delete(str(tasks["s0002"].task_id))  # a pushed task gone
    ls_admin.sdk.projects.import_tasks(project_id, request=[  # a task nobody pushed
        {"data": {"sample_id": "hand-made", "prompt": "p", "response_a": "a", "response_b": "b"}}])
    late = annotate(ls_admin, tasks["s0003"].task_id, annotators[1], "A")  # not harvested yet
    ls_admin.sdk.annotations.update(changed, result=[choice_result("B")])  # changed since the harvest
    ls_admin.sdk.annotations.delete(deleted)  # harvested, then deleted
    summary = reconcile_project(resources.store(), ls_admin, project_id, page_size=2)
    assert summary.kinds == {("missing_in_labelstudio", False): 1, ("not_pushed", False): 1,
                             ("not_harvested", True): 1, ("changed", True): 1, ("vanished", False): 1}
    assert (summary.pushed, summary.in_labelstudio, summary.annotations, summary.harvested) == (5, 5, 2, 0)
    code, lines = _reconcile_cli()
    assert code == 1
    assert lines[-1] == ("reconcile: 3 unexplained (pushed 5, in Label Studio 5, annotations 2, harvested 0, "
                         "explained 2)")
    assert any(line.startswith("explained not_harvested: ") and f"annotation {late} sample s0003" in line
               for line in lines)
    assert any(line.startswith("UNEXPLAINED vanished: ") and f"annotation {deleted} " in line for line in lines)

    # A watermark past those tasks means no harvest will read them again: late is now lost.
    ahead = (datetime.now(UTC) + timedelta(minutes=5)).strftime(LS_TIME_FORMAT)
    resources.store().set_watermark(watermark_name(project_id), ahead)
    assert _kinds(ls_admin, project_id)[("not_harvested", False)] == 1
    assert _kinds(ls_admin, project_id)[("changed", False)] == 1
    code, lines = _reconcile_cli("--quiet")
    assert code == 1 and lines[-1].startswith("reconcile: 5 unexplained ")
    assert "  not_harvested: 1 unexplained, 0 explained" in lines


def test_push_after_an_unfinished_intent_checks_once_and_imports_nothing_twice(ls_env, ls_admin, monkeypatch):
    seed_human_pending(make_samples(6))
    project_id = ensure_project.fn()
    st = resources.store()
    lookups: list[list[str]] = []
    real_lookup = LabelStudioClient.task_ids_by_sample

    def counted_lookup(self, project, sample_ids, *args, **kwargs):
        lookups.append(sorted(sample_ids))
        return real_lookup(self, project, sample_ids, *args, **kwargs)

    monkeypatch.setattr(LabelStudioClient, "task_ids_by_sample", counted_lookup)
    real_finish = ls_store.finish_push

    def killed_after_import(*args, **kwargs):
        raise RuntimeError("simulated kill after the import, before recording")

    monkeypatch.setattr(ls_store, "finish_push", killed_after_import)
    with pytest.raises(RuntimeError, match="simulated kill"):
        push_pending.fn(project_id, batch_size=4)
    monkeypatch.setattr(ls_store, "finish_push", real_finish)
    assert ls_store.open_intents(st, project_id) == [f"s{i:04d}" for i in range(4)]
    assert lookups == []  # a push with no unfinished intent never asks Label Studio
    # The unrecorded tasks are explained: the next push records them.
    assert _kinds(ls_admin, project_id) == {("unfinished_push", True): 4}
    assert _reconcile_cli()[0] == 0

    assert push_pending.fn(project_id, batch_size=4) == {"created": 2, "already_there": 4}
    assert lookups == [[f"s{i:04d}" for i in range(4)]]  # one check, for the unfinished push's samples only
    sample_ids = [t.data["sample_id"] for t in ls_admin.tasks(project_id, [], fields="task_only")]
    assert sorted(sample_ids) == [f"s{i:04d}" for i in range(6)]
    assert ls_store.open_intents(st, project_id) == []
    assert _kinds(ls_admin, project_id) == {}

    # Intents whose import never happened (killed before it): checked, found absent, imported once.
    seed_human_pending(make_samples(2, "late"))
    ls_store.record_intents(st, "killed-before-import", project_id, ["late0000", "late0001"])
    assert push_pending.fn(project_id) == {"created": 2, "already_there": 0}
    assert lookups[-1] == ["late0000", "late0001"] and len(lookups) == 2
    assert push_pending.fn(project_id) == {"created": 0, "already_there": 0} and len(lookups) == 2
    sample_ids = [t.data["sample_id"] for t in ls_admin.tasks(project_id, [], fields="task_only")]
    assert len(sample_ids) == len(set(sample_ids)) == 8


def test_a_duplicate_import_is_unexplained(ls_env, ls_admin):
    seed_human_pending(make_samples(2))
    project_id = ensure_project.fn()
    push_pending.fn(project_id)
    (task,) = [t for t in ls_admin.tasks(project_id, [], fields="task_only") if t.data["sample_id"] == "s0001"]
    ls_admin.sdk.projects.import_tasks(project_id, request=[{"data": dict(task.data)}])
    assert _kinds(ls_admin, project_id) == {("duplicate_task", False): 1}
    code, lines = _reconcile_cli("--project-id", str(project_id))
    assert code == 1 and any(f"recorded: task {task.id}" in line for line in lines)


def test_reconcile_without_a_project_is_a_one_line_error(ls_env):
    code, lines = _reconcile_cli()
    assert code == 2 and len(lines) == 1 and "no Label Studio project titled" in lines[0]



def test_the_harvest_flow_publishes_the_reconcile_summary(ls_env, ls_admin, prefect_harness):
    from prefect.artifacts import Artifact

    from flows.harvest_reviews import harvest_reviews

    seed_human_pending(make_samples(2))
    result = harvest_reviews(retry_delay_seconds=[0])
    assert (result["reconcile"]["unexplained"], result["reconcile"]["pushed"]) == (0, 2)
    assert "reconcile: 0 unexplained (pushed 2, in Label Studio 2," in Artifact.get("labelstudio-reconcile").data

    ls_admin.sdk.tasks.delete(str(resources.store().get_human_tasks()["s0000"].task_id))
    result = harvest_reviews(retry_delay_seconds=[0])  # a difference is reported, not a failed run
    assert result["reconcile"]["kinds"] == {"missing_in_labelstudio:unexplained": 1}
    markdown = Artifact.get("labelstudio-reconcile").data
    assert "**reconcile: 1 unexplained (pushed 2, in Label Studio 1," in markdown
    assert "| missing_in_labelstudio | 1 | 0 |" in markdown and "sample s0000" in markdown
