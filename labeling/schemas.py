"""The records that move through juryflow.

Everything here is a plain pydantic model so that it validates at the edges and
serialises into the store, Prefect artifacts and exported datasets the same way.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

Choice = Literal["A", "B"]
HumanChoice = Literal["A", "B", "tie"]


class SampleState(str, Enum):
    """The explicit per-sample state machine (see ``labeling.store.ALLOWED_TRANSITIONS``)."""

    new = "new"
    ai_labeled = "ai_labeled"
    judge_pending = "judge_pending"
    human_pending = "human_pending"
    labeled = "labeled"
    quarantined = "quarantined"


class LabelSource(str, Enum):
    judge = "judge"  # judge agreed with the AI labeler, accepted without a human
    human = "human"  # a human decided and no judge verdict was overridden
    human_over_judge = "human_over_judge"  # a human overrode a different judge verdict


class RouteReason(str, Enum):
    cold_start = "cold_start"  # no trained labeler yet: everything goes to humans
    low_confidence = "low_confidence"
    mid_confidence = "mid_confidence"  # between low and high: judge and human both look
    high_confidence = "high_confidence"
    judge_agrees = "judge_agrees"
    judge_disagrees = "judge_disagrees"
    swap_inconsistent = "swap_inconsistent"
    judge_unparseable = "judge_unparseable"
    judge_low_confidence = "judge_low_confidence"  # judge below its guaranteed threshold
    possible_injection = "possible_injection"
    # A deterministic random draw from the whole stream (seeded by sample id). Audited samples
    # always get a human label, so they are an unbiased calibration set (docs/routing-guarantee.md).
    audit = "audit"


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


def render_prompt(prompt: str | list[ChatMessage]) -> str:
    """A chat prompt as plain text, in the HH-RLHF transcript style."""
    if isinstance(prompt, str):
        return prompt
    names = {"system": "System", "user": "Human", "assistant": "Assistant"}
    return "\n\n".join(f"{names[m.role]}: {m.content}" for m in prompt)


def content_hash(*parts: Any) -> str:
    """A stable short hash of JSON-serialisable parts (ids, snapshot ids, cache keys)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def unit_hash(*parts: Any) -> float:
    """A deterministic number in [0, 1) from the parts: seeded shuffles, audits and splits."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big") / 2**64


class Sample(BaseModel):
    """A prompt with two candidate responses. ``reference_label`` is never shown to labelers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    prompt: str | list[ChatMessage]
    response_a: str
    response_b: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The source's own answer (HH-RLHF's `chosen`), kept for evaluation only.
    reference_label: Choice | None = None

    @property
    def prompt_text(self) -> str:
        return render_prompt(self.prompt)

    def fingerprint(self) -> str:
        """Hash of the content (not the reference label), to tell re-ingest from id collisions."""
        prompt = self.prompt if isinstance(self.prompt, str) else [m.model_dump() for m in self.prompt]
        return content_hash(prompt, self.response_a, self.response_b)


class AILabel(BaseModel):
    model_config = ConfigDict(frozen=True)

    sample_id: str
    p_a: float = Field(ge=0.0, le=1.0, description="P(response A is better)")
    labeler_name: str
    labeler_version: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def preferred(self) -> Choice:
        return "A" if self.p_a >= 0.5 else "B"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def confidence(self) -> float:
        return max(self.p_a, 1.0 - self.p_a)


class JudgeVerdict(BaseModel):
    """A constitutional judge's verdict, computed in both A/B orders to cancel position bias."""

    model_config = ConfigDict(frozen=True)

    sample_id: str
    # P(A better) read from the prompt shown in the original order (A first).
    p_a_original: float | None = Field(default=None, ge=0.0, le=1.0)
    # P(A better) read from the prompt shown swapped (B first), mapped back to A.
    p_a_swapped: float | None = Field(default=None, ge=0.0, le=1.0)
    principles: list[str] = Field(default_factory=list)
    model: str
    version: str
    critique: str | None = None
    # Set when the judge output could not be read; such a verdict never becomes a label.
    parse_error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def p_a(self) -> float | None:
        if self.p_a_original is None or self.p_a_swapped is None:
            return None
        return (self.p_a_original + self.p_a_swapped) / 2

    @computed_field  # type: ignore[prop-decorator]
    @property
    def swap_consistent(self) -> bool:
        if self.p_a_original is None or self.p_a_swapped is None:
            return False
        return (self.p_a_original >= 0.5) == (self.p_a_swapped >= 0.5) and self.p_a_original != 0.5

    @computed_field  # type: ignore[prop-decorator]
    @property
    def preferred(self) -> Choice | None:
        p = self.p_a
        return None if p is None else ("A" if p >= 0.5 else "B")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def confidence(self) -> float | None:
        p = self.p_a
        return None if p is None else max(p, 1.0 - p)


class Route(BaseModel):
    """Where routing sent a sample and why."""

    model_config = ConfigDict(frozen=True)

    sample_id: str
    to_judge: bool
    to_human: bool
    accept_judge: bool = False  # the judge's label is final without a human
    reasons: list[RouteReason]


class HumanLabel(BaseModel):
    model_config = ConfigDict(frozen=True)

    sample_id: str
    annotation_id: str  # unique per annotation: makes harvest/import idempotent
    annotator: str
    choice: HumanChoice
    reason: str | None = None
    cancelled: bool = False  # skipped/cancelled annotations are kept but never counted


class FinalLabel(BaseModel):
    """The merged answer for a sample. A human ``tie`` is final but is left out of exports."""

    model_config = ConfigDict(frozen=True)

    sample_id: str
    preferred: HumanChoice
    source: LabelSource
    labeler_version: str | None = None
    judge_version: str | None = None
    confidence: float | None = None
    n_annotators: int = 0


class QuarantineRecord(BaseModel):
    """One rejected input row: which sample, which field, why, and how to fix it."""

    model_config = ConfigDict(frozen=True)

    sample_id: str  # the given id, or "<source>:<row>" when none could be read
    source: str
    row: int | None = None
    field: str
    reason: str

    @property
    def message(self) -> str:
        where = f"{self.source} row {self.row}" if self.row is not None else self.source
        return f"sample {self.sample_id!r} ({where}), field {self.field!r}: {self.reason}"
