"""What a review task may show of the machines (labelstudio.show_ai_reference): pure logic, no server."""

from __future__ import annotations

import pytest

from labeling.labelstudio.client import label_config, review_controls
from labeling.labelstudio.reference import ANCHOR, config_with_reference, reference_text
from labeling.schemas import AILabel, JudgeVerdict, Route, RouteReason

LABEL = AILabel(sample_id="s1", p_a=0.81, labeler_name="emb", labeler_version="v1")
VERDICT = JudgeVerdict(sample_id="s1", p_a_original=0.3, p_a_swapped=0.2, model="tiny", version="j1",
                       critique="B is kinder")


def _routes(*reasons: RouteReason) -> dict[str, Route]:
    return {f"stage{i}": Route(sample_id="s1", to_judge=False, to_human=True, reasons=[r])
            for i, r in enumerate(reasons)}


def test_a_review_task_shows_both_answers_the_critique_and_why_it_came():
    text = reference_text(LABEL, VERDICT, _routes(RouteReason.high_confidence, RouteReason.judge_disagrees))
    assert text.splitlines() == [
        "AI reference, not a label and not pre-selected: judge for yourself.",
        "Labeler (emb v1): prefers A, P(A better) 0.81.",
        "Judge (tiny j1): prefers B; P(A better) 0.30 with A shown first, 0.20 with B shown first.",
        "Judge's critique: B is kinder",
        "Sent for review because: high_confidence, judge_disagrees.",
    ]


@pytest.mark.parametrize("audit_stage", [0, 1])
def test_an_audit_task_shows_nothing_at_any_stage(audit_stage):
    reasons = [RouteReason.high_confidence, RouteReason.judge_agrees]
    reasons[audit_stage] = RouteReason.audit
    assert reference_text(LABEL, VERDICT, _routes(*reasons)) == ""


def test_a_cold_start_task_has_no_machine_to_show():
    assert reference_text(None, None, _routes(RouteReason.cold_start)) == ""
    unparseable = VERDICT.model_copy(update={"p_a_original": None, "p_a_swapped": None, "critique": None})
    assert reference_text(None, unparseable, _routes(RouteReason.judge_unparseable)) == ""


def test_the_reference_config_adds_one_text_and_keeps_the_controls():
    blind, shown = label_config(), label_config(show_ai_reference=True)
    assert "ai_reference" not in blind and shown.count('value="$ai_reference"') == 1
    assert shown.index("$ai_reference") < shown.index("Which response is better?")
    assert shown.replace(config_with_reference(blind), "") == ""
    controls = review_controls()  # the blind config's controls; the reference block adds none
    from label_studio_sdk.label_interface import LabelInterface

    interface = LabelInterface(shown)
    assert [c.name for c in interface.controls] == [c.name for c in controls.interface.controls]
    with pytest.raises(ValueError, match="restore the shipped config"):
        config_with_reference(blind.replace(ANCHOR, ""))
