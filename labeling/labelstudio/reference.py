"""The machines' answers as a reference on review tasks: only where `labelstudio.show_ai_reference` is
on, and never on an audit task.

Off by default: a reviewer shown the judge's answer anchors on it, and every human label overrides the
judge in the merge. Audit labels calibrate the routing guarantee, so an audit task shows nothing of the
machines whatever the setting (docs/routing-guarantee.md, "Blind audits"). The reference is plain text
in the task's data, never a prediction: nothing is pre-ticked, and the annotation holds only the
reviewer's own answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from labeling.audit_design import drawn_for_audit
from labeling.schemas import AILabel, JudgeVerdict, Route

if TYPE_CHECKING:
    from labeling.store import Store

FIELD = "ai_reference"
# Inserted before this line of config.xml: the reference sits above the question, as text (never HTML).
ANCHOR = '  <Header value="Which response is better?"/>\n'
BLOCK = (f'  <View name="{FIELD}_view" style="margin-top: 1em;">\n'
         f'    <Text name="{FIELD}" value="${FIELD}"/>\n'
         '  </View>\n')


def config_with_reference(blind_config: str) -> str:
    """The labeling config with the reference block; config.xml must keep its question header."""
    if ANCHOR not in blind_config:
        raise ValueError(f"labeling/labelstudio/config.xml lacks the line {ANCHOR.strip()!r} that the AI "
                         "reference is placed above: restore the shipped config")
    return blind_config.replace(ANCHOR, BLOCK + ANCHOR, 1)


def _judge_line(verdict: JudgeVerdict) -> str | None:
    if verdict.preferred is None:  # unreadable in at least one order: no answer to show
        return None
    return (f"Judge ({verdict.model} {verdict.version}): prefers {verdict.preferred}; P(A better) "
            f"{verdict.p_a_original:.2f} with A shown first, {verdict.p_a_swapped:.2f} with B shown first.")


def reference_text(ai_label: AILabel | None, verdict: JudgeVerdict | None, routes: Mapping[str, Route]) -> str:
    """What a review task shows of the machines: "" for an audit task or when no machine has answered."""
    if drawn_for_audit(routes):
        return ""
    lines = []
    if ai_label is not None:
        lines.append(f"Labeler ({ai_label.labeler_name} {ai_label.labeler_version}): prefers {ai_label.preferred}, "
                     f"P(A better) {ai_label.p_a:.2f}.")
    if verdict is not None and (judge := _judge_line(verdict)):
        lines.append(judge)
        if verdict.critique:
            lines.append(f"Judge's critique: {verdict.critique}")
    if not lines:
        return ""
    reasons = sorted({r.value for route in routes.values() for r in route.reasons})
    if reasons:
        lines.append(f"Sent for review because: {', '.join(reasons)}.")
    return "\n".join(["AI reference, not a label and not pre-selected: judge for yourself.", *lines])


def reference_texts(store: Store, sample_ids: Sequence[str]) -> dict[str, str]:
    """reference_text for each sample, read from the store."""
    ids = list(sample_ids)
    labels, verdicts, routes = store.get_ai_labels(ids), store.get_verdicts(ids), store.get_routes(ids)
    return {i: reference_text(labels.get(i), verdicts.get(i), routes.get(i, {})) for i in ids}
