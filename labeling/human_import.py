"""Human labels without Label Studio: ``juryflow human export-pending`` and ``juryflow human import``.

``export-pending`` writes one JSON line per sample awaiting review, with its id and the A/B texts
in the store's order. That order is shuffled from the input file's (deterministically, by sample
id), so answer about ``response_a``/``response_b`` as written in the exported file, never as in
your input. ``import`` reads the same file back once ``choice`` is filled in:

    {"sample_id": ..., "choice": "A" | "B" | "tie", "annotator"?: ..., "annotation_id"?: ..., "reason"?: ...}

Rows whose ``choice`` is still empty are skipped, not rejected. Without an ``annotation_id`` one
is derived from the file, sample and annotator, so importing the same file twice never
duplicates a label: the second import reports the labels as unchanged.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from labeling.merge import resolve_human_reviews
from labeling.schemas import HumanLabel, QuarantineRecord, Sample, SampleState, content_hash

# A human may label a sample that waits for review, or relabel one already decided.
REVIEWABLE = frozenset({SampleState.human_pending, SampleState.labeled})
HEADER_KEY = "_about"
AB_ORDER_NOTE = (
    "A/B are in juryflow's stored order, shuffled from your input file by sample id: answer about "
    "response_a and response_b exactly as written here. Fill in choice (A, B or tie), optionally "
    "annotator and reason, then run `juryflow human import FILE`."
)


def pending_rows(samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """The export file's lines: a header stating the A/B order, then one row per sample to answer."""
    rows: list[dict[str, Any]] = [{HEADER_KEY: AB_ORDER_NOTE}]
    for s in samples:
        prompt = s.prompt if isinstance(s.prompt, str) else [m.model_dump() for m in s.prompt]
        rows.append({"sample_id": s.sample_id, "prompt": prompt, "response_a": s.response_a,
                     "response_b": s.response_b, "choice": None, "annotator": None, "reason": None})
    return rows


def write_pending(samples: Iterable[Sample], path: str | Path) -> int:
    """Write ``pending_rows`` as JSONL; returns the number of samples written."""
    rows = pending_rows(samples)
    Path(path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return len(rows) - 1


@dataclass
class ReadResult:
    labels: list[HumanLabel] = field(default_factory=list)
    problems: list[QuarantineRecord] = field(default_factory=list)
    unanswered: int = 0  # exported rows whose choice is still empty


def read_human_file(path: str | Path) -> ReadResult:
    """Labels, the rows that could not be read (with their row and field), and the rows still unanswered."""
    path = Path(path)
    out = ReadResult()
    with path.open("rb") as fh:
        for row, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("each line must be a JSON object")
            except (UnicodeDecodeError, ValueError) as exc:
                out.problems.append(
                    QuarantineRecord(
                        sample_id=f"{path.name}:{row}", source=str(path), row=row, field="(line)",
                        reason=f"not a JSON object ({exc}); fix the line",
                    )
                )
                continue
            if HEADER_KEY in data and "sample_id" not in data:
                continue  # export-pending's header line
            if data.get("choice") in (None, "") and data.get("sample_id") and "response_a" in data:
                out.unanswered += 1  # an exported row nobody answered yet
                continue
            sid = str(data.get("sample_id") or f"{path.name}:{row}")
            annotator = str(data.get("annotator") or "import")
            try:
                out.labels.append(
                    HumanLabel(
                        sample_id=sid,
                        annotation_id=str(data.get("annotation_id") or f"import-{content_hash(path.name, sid, annotator)}"),
                        annotator=annotator,
                        choice=data.get("choice"),
                        reason=data.get("reason"),
                    )
                )
            except ValidationError as exc:
                field_name = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "choice"
                out.problems.append(
                    QuarantineRecord(
                        sample_id=sid, source=str(path), row=row, field=field_name,
                        reason=f"{exc.errors()[0]['msg']}; use choice 'A', 'B' or 'tie'",
                    )
                )
    return out


def split_reviewable(
    labels: list[HumanLabel], states: dict[str, SampleState], source: str
) -> tuple[list[HumanLabel], list[QuarantineRecord]]:
    """Labels for samples a human may answer, and a rejection naming why for every other one."""
    accepted: list[HumanLabel] = []
    rejected: list[QuarantineRecord] = []
    for hl in labels:
        state = states.get(hl.sample_id)
        if state in REVIEWABLE:
            accepted.append(hl)
            continue
        reason = ("unknown sample id; ingest it first (`juryflow human export-pending` lists the ids awaiting review)"
                  if state is None else f"sample is {state.value}, not awaiting human review")
        rejected.append(QuarantineRecord(sample_id=hl.sample_id, source=source, field="sample_id", reason=reason))
    return accepted, rejected


def split_unchanged(labels: list[HumanLabel], stored: dict[str, list[HumanLabel]]) -> tuple[list[HumanLabel], int]:
    """Labels that are new or edited, and how many are already stored exactly as given."""
    known = {(hl.annotation_id, hl.choice, hl.reason) for hls in stored.values() for hl in hls}
    fresh = [hl for hl in labels if (hl.annotation_id, hl.choice, hl.reason) not in known]
    return fresh, len(labels) - len(fresh)


def explain_needs_more(votes: dict[str, int], max_annotators: int) -> str:
    """Plain words for a tied or split vote that waits for another annotator."""
    n = sum(votes.values())
    noun = "annotator" if n == 1 else "annotators"
    tie = votes.get("tie", 0)
    said = f"{tie} of {n} {noun} said tie" if tie else f"{n} {noun} split: {votes.get('A', 0)} said A, {votes.get('B', 0)} said B"
    return f"{said}; needs another annotator (at most labelstudio.max_annotators_on_tie={max_annotators})"


@dataclass
class ImportReport:
    imported: int = 0  # new or edited labels written
    unchanged: int = 0  # labels already stored exactly so
    unanswered: int = 0
    outcomes: Counter = field(default_factory=Counter)
    explanations: dict[str, str] = field(default_factory=dict)  # sample_id -> why it is not decided yet
    rejected: list[QuarantineRecord] = field(default_factory=list)


def import_human_labels(store: Any, path: str | Path, max_annotators: int) -> ImportReport:
    """Read a labels file, keep the reviewable ones, store them and resolve their samples, in one transaction."""
    read = read_human_file(path)
    accepted, rejected = split_reviewable(read.labels, store.sample_states([hl.sample_id for hl in read.labels]), str(path))
    fresh, unchanged = split_unchanged(accepted, store.get_human_labels([hl.sample_id for hl in accepted]))
    report = ImportReport(imported=len(fresh), unchanged=unchanged, unanswered=read.unanswered,
                          rejected=[*read.problems, *rejected])
    with store.atomic():
        store.record_human_labels(fresh)
        resolutions = resolve_human_reviews(store, sorted({hl.sample_id for hl in fresh}), max_annotators)
        store.record_final_labels([r.final for r in resolutions if r.final is not None])
        store.add_quarantine(report.rejected)
    for r in resolutions:
        report.outcomes[r.outcome] += 1
        if r.outcome == "needs_more":
            report.explanations[r.sample_id] = explain_needs_more(r.votes, max_annotators)
    return report
