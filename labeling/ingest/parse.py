"""Rows to samples: the generic and HH-RLHF shapes, ids, the A/B shuffle, and a quarantine record per bad row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from labeling.ingest.readers import HH_COLUMNS, RawRecord
from labeling.ingest.validation import (
    FieldProblem,
    InputRow,
    check_encodable,
    check_metadata,
    short_repr,
    shows_nothing,
    split_hh,
)
from labeling.schemas import QuarantineRecord, Sample, content_hash, unit_hash
from labeling.settings import IngestSettings

_KNOWN = {"sample_id", "prompt", "response_a", "response_b", "metadata", "preferred", "reference_label"}


def parse_records(
    records: Iterable[RawRecord], ingest_settings: IngestSettings
) -> tuple[list[Sample], list[QuarantineRecord]]:
    """Validate rows into samples (A/B order shuffled by id); every rejected row becomes a QuarantineRecord."""
    samples: dict[str, Sample] = {}
    rejected: list[QuarantineRecord] = []
    context = {"max_chars": ingest_settings.max_chars}
    for record in records:
        if record.error == "":
            continue
        fallback_id = f"{record.source}:{record.row}" if record.row is not None else record.source
        if record.error is not None or record.data is None:
            rejected.append(
                QuarantineRecord(
                    sample_id=fallback_id,
                    source=record.source,
                    row=record.row,
                    field=record.field,
                    reason=record.error or "no data",
                )
            )
            continue
        given_id = record.data.get("sample_id")
        readable = isinstance(given_id, str) and not shows_nothing(given_id.strip())
        quarantine_id = given_id if readable else fallback_id  # name the row when its id shows nothing
        try:
            sample = _to_sample(record.data, context)
        except ValidationError as exc:
            field, reason = _first_problem(exc)
            rejected.append(
                QuarantineRecord(
                    sample_id=quarantine_id, source=record.source, row=record.row, field=field, reason=reason
                )
            )
            continue
        except FieldProblem as exc:
            rejected.append(
                QuarantineRecord(
                    sample_id=quarantine_id, source=record.source, row=record.row, field=exc.field, reason=str(exc)
                )
            )
            continue
        except RecursionError:  # a structure the decoder could follow but later code cannot (see readers.py)
            rejected.append(
                QuarantineRecord(
                    sample_id=quarantine_id,
                    source=record.source,
                    row=record.row,
                    field="(row)",
                    reason="nests arrays or objects too deeply to check: flatten the row",
                )
            )
            continue
        first = samples.setdefault(sample.sample_id, sample)
        if first is not sample and (first.fingerprint(), first.reference_label) != (
            sample.fingerprint(),
            sample.reference_label,
        ):
            rejected.append(
                QuarantineRecord(
                    sample_id=sample.sample_id,
                    source=record.source,
                    row=record.row,
                    field="sample_id",
                    reason="repeats an earlier row's sample_id with different content (the first row was kept): "
                    "give this row its own sample_id, or drop it",
                )
            )
    return list(samples.values()), rejected


def _to_sample(data: dict[str, Any], context: dict[str, Any]) -> Sample:
    check_encodable("".join(data), "(column names)")  # unknown columns are kept in metadata, names and all
    is_hh = bool(HH_COLUMNS & set(data)) and not ({"response_a", "response_b"} & set(data))
    if is_hh:
        for field in HH_COLUMNS - set(data):
            raise FieldProblem(field, "is missing: an HH-RLHF row needs both `chosen` and `rejected` transcripts")
        prompt, chosen, rejected = split_hh(data.get("chosen"), data.get("rejected"), context["max_chars"])
        fields = {k: v for k, v in data.items() if k not in HH_COLUMNS}
        row = InputRow.model_validate(
            {**fields, "prompt": prompt, "response_a": chosen, "response_b": rejected, "preferred": "A"},
            context=context,
        )
        sample_id = row.sample_id or content_hash(prompt, chosen, rejected)
    else:
        row = InputRow.model_validate(data, context=context)
        prompt_json = row.prompt if isinstance(row.prompt, str) else [m.model_dump() for m in row.prompt]
        sample_id = row.sample_id or content_hash(prompt_json, row.response_a, row.response_b)
    label = row.preferred or row.reference_label
    metadata = {**{k: v for k, v in (row.model_extra or {}).items() if k not in _KNOWN}, **row.metadata}
    # Shuffle A/B by id so position never gives the known label away (HH's chosen is always first).
    swap = unit_hash("ab", sample_id) < 0.5
    a, b = (row.response_b, row.response_a) if swap else (row.response_a, row.response_b)
    if swap and label is not None:
        label = "B" if label == "A" else "A"
    check_metadata(metadata, "(extra columns)")  # unknown columns are kept in metadata, so must be plain JSON
    return Sample(
        sample_id=sample_id,
        prompt=row.prompt,
        response_a=a,
        response_b=b,
        metadata={**metadata, "ab_swapped": swap},
        reference_label=label,
    )


def _first_problem(exc: ValidationError) -> tuple[str, str]:
    """A pydantic error -> (field, reason with the fix)."""
    err = exc.errors()[0]
    problem = (err.get("ctx") or {}).get("error")
    if isinstance(problem, FieldProblem):
        return problem.field, str(problem)
    field = ".".join(str(p) for p in err["loc"]) or "(row)"
    if err["type"] == "missing":
        return field, f"is missing: add `{field}` with its text"
    return field, f"{err['msg']} (got {short_repr(err.get('input'))}): fix `{field}`"
