"""Annotation validation and vote resolution (pure logic; the server round trip is in test_roundtrip.py)."""

from __future__ import annotations

from labeling.labelstudio.client import choice_result, reason_result
from labeling.labelstudio.harvest import majority, parse_annotation, resolve
from labeling.schemas import HumanLabel, JudgeVerdict, LabelSource, QuarantineRecord


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


def test_majority():
    assert majority(["A", "A", "B"]) == "A"
    assert majority(["A", "B"]) is None
    assert majority(["tie", "tie", "A"]) == "tie"
    assert majority([]) is None


def _lab(sample, i, choice, cancelled=False):
    return HumanLabel(sample_id=sample, annotation_id=f"a{sample}{i}", annotator=f"u{i}", choice=choice,
                      cancelled=cancelled)


def test_resolve_waits_reopens_ties_and_overrides_judge():
    labels = {
        "wait": [_lab("wait", 1, "A"), _lab("wait", 2, "B", cancelled=True)],
        "win": [_lab("win", 1, "B"), _lab("win", 2, "B")],
        "split": [_lab("split", 1, "A"), _lab("split", 2, "B")],
        "stuck": [_lab("stuck", 1, "A"), _lab("stuck", 2, "B"), _lab("stuck", 3, "tie")],
    }
    wanted = {"wait": 2, "win": 2, "split": 2, "stuck": 3}
    verdict = JudgeVerdict(sample_id="win", p_a_original=0.9, p_a_swapped=0.8, model="m", version="j1")
    out = resolve(labels, wanted, max_on_tie=3, ai_labels={}, verdicts={"win": verdict})
    assert out.waiting == ["wait"]
    assert out.reopen == {"split": 3}
    assert out.ties["stuck"]["votes"] == {"A": 1, "B": 1, "tie": 1}
    [final] = out.final
    assert (final.sample_id, final.preferred, final.source, final.judge_version, final.n_annotators) == (
        "win", "B", LabelSource.human_over_judge, "j1", 2)
