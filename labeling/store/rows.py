"""Conversions between the store's rows and juryflow's pydantic models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from labeling.schemas import ChatMessage, QuarantineRecord, Sample, SampleState


def sample_row(s: Sample, source: str, stamp: datetime) -> dict[str, Any]:
    prompt = s.prompt if isinstance(s.prompt, str) else [m.model_dump() for m in s.prompt]
    return {
        "sample_id": s.sample_id,
        "source": source,
        "state": SampleState.new.value,
        "fingerprint": s.fingerprint(),
        "prompt": prompt,
        "response_a": s.response_a,
        "response_b": s.response_b,
        "reference_label": s.reference_label,
        "meta": s.metadata,
        "updated_at": stamp,
    }


def row_sample(r: Any) -> Sample:
    prompt = r.prompt if isinstance(r.prompt, str) else [ChatMessage(**m) for m in r.prompt]
    return Sample(
        sample_id=r.sample_id,
        prompt=prompt,
        response_a=r.response_a,
        response_b=r.response_b,
        metadata=r.meta,
        reference_label=r.reference_label,
    )


def fields(row: Any, model: type[BaseModel]) -> dict[str, Any]:
    mapping = row._mapping
    return {name: mapping[name] for name in model.model_fields if name in mapping}


def latest(row: Any) -> tuple[datetime, str]:
    """Sort key: later writes last, so a dict built in this order keeps the latest per sample."""
    return (row.updated_at, row._mapping.get("labeler_version") or row._mapping.get("version") or "")


def conflict(sample: Sample, source: str, other: str) -> QuarantineRecord:
    return QuarantineRecord(
        sample_id=sample.sample_id,
        source=source,
        field="sample_id",
        reason=f"content differs from {other}: give this sample a new sample_id, or drop the duplicate row",
    )
