"""Push and harvest against a real Label Studio server (see conftest.py)."""

from __future__ import annotations

import threading

import pytest

from labeling.labelstudio import push as push_module
from labeling.labelstudio.client import LabelStudioClient, LabelStudioUnavailable, choice_result
from labeling.schemas import LabelSource, SampleState
from tasks import resources
from tasks.review import ensure_project, harvest, push_pending
from tests.labeling.labelstudio.conftest import annotate, make_samples, seed_human_pending

pytestmark = [pytest.mark.integration, pytest.mark.requires_labelstudio]


def _project_sample_ids(client: LabelStudioClient, project_id: int) -> list[str]:
    return sorted(t.data["sample_id"] for t in client.tasks(project_id, [], fields="task_only"))


def _push(n: int, prefix: str = "s", **seed) -> tuple[int, dict]:
    seed_human_pending(make_samples(n, prefix), **seed)
    project_id = ensure_project.fn()
    push_pending.fn(project_id)
    return project_id, resources.store().get_human_tasks()


def test_push_crash_between_import_and_record_never_duplicates(ls_env, ls_admin, monkeypatch):
    seed_human_pending(make_samples(6))
    project_id = ensure_project.fn()
    st = resources.store()
    real_record = type(st).record_human_tasks

    def crash(self, tasks):
        raise RuntimeError("simulated crash after the import, before recording")

    monkeypatch.setattr(type(st), "record_human_tasks", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        push_pending.fn(project_id, batch_size=4)
    monkeypatch.setattr(type(st), "record_human_tasks", real_record)
    assert st.get_human_tasks() == {}  # nothing recorded, yet 4 tasks exist in Label Studio
    assert len(_project_sample_ids(ls_admin, project_id)) == 4

    result = push_pending.fn(project_id, batch_size=4)
    assert result == {"created": 2, "already_there": 4}
    assert _project_sample_ids(ls_admin, project_id) == [f"s{i:04d}" for i in range(6)]
    recorded = st.get_human_tasks()
    for sample_id, task in recorded.items():  # each recorded task id really holds that sample
        assert ls_admin.sdk.tasks.get(str(task.task_id)).data["sample_id"] == sample_id
    assert push_pending.fn(project_id) == {"created": 0, "already_there": 0}
    assert st.unpushed_human_pending() == []


def test_tasks_carry_no_machine_answer_and_audits_look_like_the_rest(ls_env, ls_admin):
    """Annotators judge blind (issue 11): no prediction, confidence, critique or route reason in any task."""
    seed_human_pending(make_samples(1, "esc"), judge_prefers="B")
    seed_human_pending(make_samples(1, "aud"), judge_prefers="B", audit=True)
    project_id = ensure_project.fn()
    push_pending.fn(project_id)
    tasks = resources.store().get_human_tasks()
    seen = []
    for sample_id in ("esc0000", "aud0000"):
        task = ls_admin.sdk.tasks.get(str(tasks[sample_id].task_id))
        assert task.predictions == [] and not task.meta
        assert sorted(task.data) == ["prompt", "response_a", "response_b", "sample_id"]
        seen.append({k: v for k, v in task.data.items() if k != "sample_id"})
    assert seen[0] == seen[1]  # make_samples gives both the same texts: nothing else tells the audit apart
    project = ls_admin.sdk.projects.get(project_id)
    assert (project.show_collab_predictions, project.evaluate_predictions_automatically, project.model_version,
            project.show_annotation_history) == (False, False, "", False)


def test_a_project_made_with_predictions_is_made_blind(ls_env, ls_admin):
    """Projects pushed by older juryflow showed and pre-filled predictions; ensure_project clears them."""
    from labeling.labelstudio.client import label_config, project_title

    head, _, _ = label_config().rpartition("</View>")
    old_config = head + '<Text name="critique" value="$critique"/>\n</View>\n'  # the config before issue 11
    old = ls_admin.sdk.projects.create(title=project_title(resources.settings()), label_config=old_config,
                                       show_collab_predictions=True)
    prediction = {"model_version": "judge:tiny:j1", "score": 0.9, "result": [choice_result("B")]}
    ls_admin.sdk.projects.import_tasks(old.id, request=[
        {"data": {"sample_id": "old", "prompt": "p", "response_a": "a", "response_b": "b", "critique": "c"},
         "predictions": [prediction]}])
    assert ensure_project.fn() == old.id
    project = ls_admin.sdk.projects.get(old.id)
    assert (project.show_collab_predictions, project.model_version) == (False, "")
    assert project.label_config.strip() == label_config().strip()  # the critique view is gone
    (task,) = ls_admin.tasks(old.id, [], fields="all")
    assert task.predictions == []


def test_harvest_twice_then_updated_annotation(ls_env, ls_admin, annotators):
    project_id, tasks = _push(3, judge_prefers="A")
    first = annotate(ls_admin, tasks["s0000"].task_id, annotators[0], "A", reason="clearer")
    annotate(ls_admin, tasks["s0001"].task_id, annotators[0], "B")
    st = resources.store()
    assert harvest.fn(project_id)["final_labels"] == 2
    harvest.fn(project_id)
    labels = st.get_human_labels(["s0000", "s0001", "s0002"])
    assert [len(labels.get(s, [])) for s in ("s0000", "s0001", "s0002")] == [1, 1, 0]
    assert labels["s0000"][0].reason == "clearer"
    finals = st.get_final_labels()
    assert finals["s0000"].source == LabelSource.human and finals["s0000"].preferred == "A"
    assert finals["s0001"].source == LabelSource.human_over_judge and finals["s0001"].n_annotators == 1
    assert st.sample_states(["s0002"])["s0002"] == SampleState.human_pending

    ls_admin.sdk.annotations.update(first, result=[choice_result("B")])
    harvest.fn(project_id)
    labels = st.get_human_labels(["s0000"])["s0000"]
    assert [(lab.choice, lab.reason) for lab in labels] == [("B", None)]
    assert st.get_final_labels(["s0000"])["s0000"].preferred == "B"
    assert st.get_final_labels(["s0000"])["s0000"].source == LabelSource.human_over_judge


def test_invalid_results_are_quarantined_not_guessed(ls_env, ls_admin, annotators):
    project_id, tasks = _push(3)
    bad = [
        [{"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": ["C"]}}],
        [{"from_name": "rating", "to_name": "prompt", "type": "rating", "value": {"rating": 5}}],
    ]
    for sample_id, result in zip(("s0000", "s0001"), bad):
        ls_admin.sdk.annotations.create(tasks[sample_id].task_id, result=result, completed_by=annotators[0])
    skipped = ls_admin.sdk.annotations.create(tasks["s0002"].task_id, result=[], was_cancelled=True,
                                              completed_by=annotators[0])
    out = harvest.fn(project_id)
    assert out["quarantined"] == 2 and out["final_labels"] == 0
    reasons = {q.sample_id: (q.field, q.reason) for q in resources.store().list_quarantine()}
    assert reasons["s0000"] == ("result[0].value.choices", "['C'] is not exactly one of ['A', 'B', 'tie']")
    assert reasons["s0001"][0] == "result[0].from_name"
    labels = resources.store().get_human_labels(["s0000", "s0001", "s0002"])
    assert "s0000" not in labels and "s0001" not in labels
    assert [(lab.cancelled, lab.annotation_id.endswith(f":{skipped.id}")) for lab in labels["s0002"]] == [(True, True)]
    assert resources.store().get_final_labels() == {}


def test_overlap_majority_and_ties(ls_env, ls_admin, annotators, monkeypatch):
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__ANNOTATORS_PER_TASK", "2")
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__MAX_ANNOTATORS_ON_TIE", "3")
    project_id, tasks = _push(3)
    assert ls_admin.sdk.projects.get(project_id).maximum_annotations == 2
    agree, split, tie = (tasks[s].task_id for s in ("s0000", "s0001", "s0002"))
    annotate(ls_admin, agree, annotators[0], "A")
    out = harvest.fn(project_id)
    assert out["waiting"] == 1 and out["final_labels"] == 0  # one of two annotators so far
    annotate(ls_admin, agree, annotators[1], "A")
    annotate(ls_admin, split, annotators[0], "A")
    annotate(ls_admin, split, annotators[1], "B")
    annotate(ls_admin, tie, annotators[0], "A")
    annotate(ls_admin, tie, annotators[1], "B")
    out = harvest.fn(project_id)
    assert out["final_labels"] == 1 and out["reopened_for_tie"] == 2
    reopened = ls_admin.sdk.tasks.get(str(split))
    assert (reopened.overlap, reopened.is_labeled) == (3, False)  # back in the queue for a third annotator
    st = resources.store()
    assert st.get_final_labels()["s0000"].n_annotators == 2

    annotate(ls_admin, split, annotators[2], "B")
    annotate(ls_admin, tie, annotators[2], "tie")
    out = harvest.fn(project_id)
    final = st.get_final_labels()["s0001"]
    assert (final.preferred, final.n_annotators, round(final.confidence, 3)) == ("B", 3, 0.667)
    # Three annotators, three answers: kept as a final tie, which exports leave out.
    tie_label = st.get_final_labels()["s0002"]
    assert (tie_label.preferred, tie_label.n_annotators) == ("tie", 3)
    assert st.sample_states(["s0002"])["s0002"] == SampleState.labeled
    assert out["ties"] == 1


def test_restart_mid_harvest_retries_and_loses_nothing(ls_env, ls_admin, ls_server, annotators, prefect_harness,
                                                       monkeypatch, caplog, capfd):
    from flows.harvest_reviews import harvest_reviews

    project_id, tasks = _push(4, judge_prefers="A", audit=True)
    for i, sample_id in enumerate(sorted(tasks)):
        annotate(ls_admin, tasks[sample_id].task_id, annotators[0], "A" if i < 3 else "B")
    real_list = LabelStudioClient.list_json
    restarted = []

    def server_dies_mid_listing(self, *args, **kwargs):
        if not restarted:  # the first listing of the harvest meets a server going down
            ls_server.stop()
            restarted.append(threading.Thread(target=ls_server.start))
            restarted[0].start()
        return real_list(self, *args, **kwargs)

    monkeypatch.setattr(LabelStudioClient, "list_json", server_dies_mid_listing)
    result = harvest_reviews(retry_delay_seconds=[3, 5, 8, 10])
    restarted[0].join()
    assert result["harvested"]["final_labels"] == 4
    finals = resources.store().get_final_labels()
    assert sorted(finals) == sorted(tasks)
    assert result["agreement"]["audit"] == {"n": 4, "disagreement_rate": 0.25}
    assert result["agreement"]["human_vs_judge"]["percent"] == 0.75
    assert ls_server.token not in caplog.text + "".join(capfd.readouterr())
    assert "Retrying" in caplog.text or "retry" in caplog.text.lower()


def test_server_dies_mid_push_after_import_then_retry_leaves_no_duplicate(
    ls_env, ls_admin, ls_server, prefect_harness, monkeypatch, caplog, capfd
):
    """The worst moment: Label Studio stored the import, then died before answering."""
    from flows.harvest_reviews import harvest_reviews

    seed_human_pending(make_samples(30))
    real_post = LabelStudioClient.post_json
    restarted = []

    def import_then_server_dies(self, what, path, *args, **kwargs):
        answer = real_post(self, what, path, *args, **kwargs)
        if path.endswith("/import") and not restarted:
            ls_server.stop()
            restarted.append(threading.Thread(target=ls_server.start))
            restarted[0].start()
            raise LabelStudioUnavailable(f"Label Studio at {self.url}: {what} failed: the connection was lost")
        return answer

    monkeypatch.setattr(LabelStudioClient, "post_json", import_then_server_dies)
    result = harvest_reviews(retry_delay_seconds=[3, 5, 8, 10])
    restarted[0].join()
    # The retry found the 30 tasks the lost answer had created, and recorded them instead of importing again.
    assert result["pushed"] == {"created": 0, "already_there": 30}
    project_id = result["project_id"]
    ids = _project_sample_ids(LabelStudioClient.from_settings(resources.settings()), project_id)
    assert len(ids) == len(set(ids)) == 30
    assert len(resources.store().get_human_tasks()) == 30 and not resources.store().unpushed_human_pending()
    assert ls_server.token not in caplog.text + "".join(capfd.readouterr())


def test_outage_fails_clearly_without_token(ls_env, monkeypatch, caplog, capfd, prefect_harness):
    from flows.harvest_reviews import harvest_reviews

    seed_human_pending(make_samples(2))
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__URL", dead)
    with pytest.raises(LabelStudioUnavailable) as err:
        harvest_reviews(retry_delay_seconds=[0.1, 0.1, 0.1, 0.1])
    assert dead in str(err.value)
    token = resources.settings().labelstudio.api_key.get_secret_value()
    assert token not in str(err.value) + caplog.text + "".join(capfd.readouterr())
    assert len(resources.store().unpushed_human_pending()) == 2  # still waiting for humans


def test_push_builds_one_task_per_sample():
    sample = make_samples(1)[0]
    task = push_module.build_task(sample)
    assert task == {"data": {"sample_id": "s0000", "prompt": "Question 0?", "response_a": "answer A0",
                             "response_b": "answer B0"}}
