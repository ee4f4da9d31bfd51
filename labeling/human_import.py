"""Human labels from a JSONL file keyed by sample id (``juryflow human import``).

Each line: ``{"sample_id": ..., "choice": "A" | "B" | "tie", "annotator"?: ..., "annotation_id"?: ..., "reason"?: ...}``.
Without an ``annotation_id`` one is derived from the file, sample and annotator, so importing
the same file twice never duplicates a label.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from labeling.schemas import HumanLabel, QuarantineRecord, content_hash


def read_human_labels(path: str | Path) -> tuple[list[HumanLabel], list[QuarantineRecord]]:
    path = Path(path)
    labels: list[HumanLabel] = []
    problems: list[QuarantineRecord] = []
    with path.open("rb") as fh:
        for row, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("each line must be a JSON object")
            except (UnicodeDecodeError, ValueError) as exc:
                problems.append(
                    QuarantineRecord(
                        sample_id=f"{path.name}:{row}", source=str(path), row=row, field="(line)",
                        reason=f"not a JSON object ({exc}); fix the line",
                    )
                )
                continue
            sid = str(data.get("sample_id") or f"{path.name}:{row}")
            annotator = str(data.get("annotator") or "import")
            try:
                labels.append(
                    HumanLabel(
                        sample_id=sid,
                        annotation_id=str(data.get("annotation_id") or f"import-{content_hash(path.name, sid, annotator)}"),
                        annotator=annotator,
                        choice=data.get("choice"),
                        reason=data.get("reason"),
                    )
                )
            except ValidationError as exc:
                field = ".".join(str(p) for p in exc.errors()[0]["loc"]) or "choice"
                problems.append(
                    QuarantineRecord(
                        sample_id=sid, source=str(path), row=row, field=field,
                        reason=f"{exc.errors()[0]['msg']}; use choice 'A', 'B' or 'tie'",
                    )
                )
    return labels, problems
