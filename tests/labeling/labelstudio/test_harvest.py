"""Annotation validation and the harvest decision (pure logic, no Prefect; the server round trip is in test_roundtrip.py)."""

from __future__ import annotations

from labeling.labelstudio.client import choice_result, reason_result, review_controls
from labeling.labelstudio.harvest import HarvestSummary, annotators_wanted, parse_annotation, plan_harvest
from labeling.merge import HumanResolution, resolve_human_labels
from labeling.records import ReviewOverlap
from labeling.schemas import HumanLabel, QuarantineRecord
from labeling.store import HumanTask


def _ann(result, **kw):
    return {"id": 7, "completed_by": 3, "result": result, **kw}


def test_valid_annotation_with_reason():
    label = parse_annotation(1, "s1", _ann([choice_result("B"), reason_result("safer")]))
    assert label == HumanLabel(sample_id="s1", annotation_id="ls:1:7", annotator="ls-user:3", choice="B", reason="safer")


def test_invalid_annotations_name_the_field():
    cases = {
        "result[0].value.choices": [choice_result("A") | {"value": {"choices": ["A", "B"]}}],
        "result[0].to_name": [choice_result("A") | {"to_name": "response_a"}],
        "result[0].from_name": [{"from_name": "x", "to_name": "prompt", "type": "labels", "value": {}}],
        "result": [],
    }
    for field, result in cases.items():
        parsed = parse_annotation(1, "s1", _ann(result))
        assert isinstance(parsed, QuarantineRecord) and parsed.field == field, (field, parsed)
    two = parse_annotation(1, "s1", _ann([choice_result("A"), choice_result("B")]))
    assert isinstance(two, QuarantineRecord) and "more than one" in two.reason


def test_skipped_annotation_is_kept_but_marked():
    label = parse_annotation(1, "s1", _ann([], was_cancelled=True))
    assert isinstance(label, HumanLabel) and label.cancelled


def _resolve(sample_id: str, choices: list[str], wanted: int = 1, max_annotators: int = 3) -> HumanResolution:
    labels = [HumanLabel(sample_id=sample_id, annotation_id=f"ls:1:{i}", annotator=f"ls-user:{i}", choice=c)
              for i, c in enumerate(choices)]
    return resolve_human_labels(sample_id, labels, ai_label=None, verdict=None, max_annotators=max_annotators,
                                wanted=wanted)


def test_plan_reopens_split_votes_for_one_more_annotator_and_keeps_decisions():
    tasks = {s: HumanTask(sample_id=s, project_id=1, task_id=n) for n, s in enumerate(("agree", "split", "alone"), 10)}
    resolutions = [_resolve("agree", ["A", "A"], wanted=2), _resolve("split", ["A", "B"], wanted=2),
                   _resolve("alone", ["B"], wanted=2)]
    plan = plan_harvest(resolutions, tasks)
    assert [(f.sample_id, f.preferred, f.n_annotators) for f in plan.finals] == [("agree", "A", 2)]
    assert plan.reopen == {"split": ReviewOverlap(overlap=3, task_id=11)}
    assert plan.outcomes == {"decided": 1, "needs_more": 1, "waiting": 1}


def test_plan_keeps_a_split_vote_as_a_tie_once_max_annotators_answered():
    tasks = {"s": HumanTask(sample_id="s", project_id=1, task_id=5)}
    plan = plan_harvest([_resolve("s", ["A", "B", "tie"], wanted=3, max_annotators=3)], tasks)
    assert plan.reopen == {} and [(f.preferred, f.n_annotators) for f in plan.finals] == [("tie", 3)]
    assert plan.outcomes == {"tie": 1}


def test_a_raised_overlap_outranks_the_project_setting_only_upwards():
    raised = {"split": ReviewOverlap(overlap=3, task_id=11), "low": ReviewOverlap(overlap=1, task_id=12)}
    assert annotators_wanted("split", 2, raised) == 3
    assert annotators_wanted("low", 2, raised) == 2
    assert annotators_wanted("fresh", 2, raised) == 2


def test_summary_has_the_keys_the_flow_reports():
    summary = HarvestSummary(tasks_read=3, human_labels=4, quarantined=1, final_labels=2, reopened_for_tie=1,
                             ties=0, waiting=0)
    assert summary.as_dict() == {"tasks_read": 3, "human_labels": 4, "quarantined": 1, "final_labels": 2,
                                 "reopened_for_tie": 1, "ties": 0, "waiting": 0}


def test_results_are_checked_against_the_names_in_config_xml():
    controls = review_controls()
    assert (controls.preference, controls.reason, controls.to_name, controls.choices) == (
        "preference", "reason", "prompt", ("A", "B", "tie"))
    wrong_kind = parse_annotation(1, "s1", _ann([choice_result("A") | {"type": "textarea"}]))
    assert isinstance(wrong_kind, QuarantineRecord) and wrong_kind.field == "result[0].from_name"
    bad_text = parse_annotation(1, "s1", _ann([choice_result("A"), reason_result("x") | {"value": {"text": [3]}}]))
    assert isinstance(bad_text, QuarantineRecord) and bad_text.field == "result[1].value.text"
