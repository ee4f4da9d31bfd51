"""Annotation validation and vote resolution (pure logic; the server round trip is in test_roundtrip.py)."""

from __future__ import annotations

from labeling.labelstudio.client import choice_result, reason_result
from labeling.labelstudio.harvest import parse_annotation
from labeling.schemas import HumanLabel, QuarantineRecord


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
