"""Versioned, TRL-ready snapshots of the merged labels.

``<out_root>/<snapshot_id>/`` holds ``dataset/`` (``datasets.save_to_disk``), ``data.parquet``,
``README.md`` (the dataset card) and ``snapshot.json``. The id is a hash of the rows, so the same
labels always give the same snapshot and a re-export rewrites nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from labeling.label_risk import LabelRisk, audit_design_of, estimate_label_risk
from labeling.schemas import FinalLabel, Sample
from labeling.store import Store

if TYPE_CHECKING:
    import datasets

COLUMNS = {
    "prompt": ("string", "the prompt as plain text (chat prompts rendered as 'Human: ...' turns)"),
    "chosen": ("string", "the preferred response"),
    "rejected": ("string", "the other response"),
    "sample_id": ("string", "juryflow's id of the sample; stable across snapshots"),
    "source": ("string", "who decided: judge, human or human_over_judge"),
    "labeler_version": ("string", "AI labeler that routed the sample (null at cold start)"),
    "judge_version": ("string", "constitutional judge whose verdict was used or overridden"),
    "confidence": ("float64", "confidence of the deciding label (null when unknown)"),
    "n_annotators": ("int64", "human annotations counted"),
    "p_wrong": ("float64", "estimated probability the label is wrong (null: no evidence yet); see 'Label risk'"),
}


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    snapshot_id: str
    path: Path
    n_rows: int
    counts_by_source: dict[str, int]
    created_at: str  # ISO 8601, UTC


def snapshot_row(sample: Sample, label: FinalLabel, risk: LabelRisk) -> dict[str, Any] | None:
    """The snapshot's row for one labeled sample (the one place rows are built); None for a human tie,
    which has no preference and is left out."""
    if label.preferred == "tie":
        return None
    a_wins = label.preferred == "A"
    return {
        "prompt": sample.prompt_text,
        "chosen": sample.response_a if a_wins else sample.response_b,
        "rejected": sample.response_b if a_wins else sample.response_a,
        "sample_id": sample.sample_id,
        "source": label.source.value,
        "labeler_version": label.labeler_version,
        "judge_version": label.judge_version,
        "confidence": label.confidence,
        "n_annotators": label.n_annotators,
        "p_wrong": risk.p_wrong(label),
    }


def iter_snapshot_rows(store: Store, risk: LabelRisk | None = None) -> Iterator[dict[str, Any]]:
    """One row per labeled sample, sorted by sample_id, streamed from one query."""
    risk = risk if risk is not None else estimate_label_risk(store)
    for sample, label in store.iter_labeled():
        row = snapshot_row(sample, label, risk)
        if row is not None:
            yield row


class RowsHash:
    """``content_hash(rows)`` fed one row at a time: the same snapshot id, without holding the rows.

    content_hash dumps ``(rows,)`` as compact JSON, ``[[row,row,...]]``; each row's own dump is the
    same text, so hashing the pieces in order gives the same digest.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"[[")
        self._separator = b""

    def add(self, row: dict[str, Any]) -> None:
        text = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        self._sha.update(self._separator + text.encode("utf-8"))
        self._separator = b","

    def hexdigest(self) -> str:
        sha = self._sha.copy()
        sha.update(b"]]")
        return sha.hexdigest()[:20]


# Rows per Arrow record batch while streaming a snapshot: a few MB of text, whatever the snapshot's size.
WRITE_BATCH_ROWS = 1_000


def write_rows_arrow(rows: Iterable[dict[str, Any]], path: Path, features: datasets.Features) -> tuple[str, Counter]:
    """Stream rows into an Arrow IPC file (the format ``datasets`` memory-maps) in bounded batches;
    returns the rows' snapshot id and their counts by source."""
    import pyarrow as pa

    schema = features.arrow_schema
    digest, counts, batch = RowsHash(), Counter[str](), []
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for row in rows:
            digest.add(row)
            counts[row["source"]] += 1
            batch.append(row)
            if len(batch) == WRITE_BATCH_ROWS:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                batch = []
        if batch:
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
    return digest.hexdigest(), counts


def export_snapshot(store: Store, out_root: Path, routing: dict[str, Any]) -> Snapshot:
    """Write the current labels as a snapshot (or find the identical one) and record it in the store.

    The rows stream from one query into an Arrow file in staging while their hash is computed, so
    memory stays bounded at any size; the id is known only at the end, and when that snapshot exists
    already the staging file is dropped and nothing final is rewritten.
    """
    import datasets

    started = datetime.now(UTC)  # labels written after this moment count towards the next snapshot
    risk = estimate_label_risk(store, audit_design_of(routing))  # focused audits are weighted by their design
    out_root = Path(out_root)
    features = datasets.Features({name: datasets.Value(kind) for name, (kind, _) in COLUMNS.items()})
    # Write beside the final place, then rename: readers never see half a snapshot.
    staging = out_root / f".export-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir(parents=True)
    try:
        snapshot_id, counts = write_rows_arrow(iter_snapshot_rows(store, risk), staging / "rows.arrow", features)
        final = out_root / snapshot_id
        if (final / "snapshot.json").is_file():
            meta = json.loads((final / "snapshot.json").read_text(encoding="utf-8"))
            snapshot = Snapshot(
                snapshot_id=snapshot_id,
                path=final,
                n_rows=meta["n_rows"],
                counts_by_source=meta["counts_by_source"],
                created_at=meta["created_at"],
            )
        else:
            snapshot = Snapshot(
                snapshot_id=snapshot_id,
                path=final,
                n_rows=sum(counts.values()),
                counts_by_source=dict(sorted(counts.items())),
                created_at=started.isoformat(timespec="seconds"),
            )
            # Memory-mapped: save_to_disk and to_parquet copy it in batches.
            info = datasets.DatasetInfo(features=features)
            dataset = datasets.Dataset.from_file(str(staging / "rows.arrow"), info=info)
            dataset.save_to_disk(str(staging / "dataset"))
            dataset.to_parquet(str(staging / "data.parquet"))
            del dataset
            (staging / "rows.arrow").unlink()
            (staging / "README.md").write_text(dataset_card(snapshot, routing, risk), encoding="utf-8")
            meta = {**snapshot.model_dump(mode="json", exclude={"path"}), "routing": routing, "columns": list(COLUMNS)}
            (staging / "snapshot.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
            try:
                staging.rename(final)
            except OSError:  # another process exported the same rows first; theirs is identical
                pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when renamed
    remove_stale_staging(out_root)
    store.record_snapshot(snapshot_id, snapshot.n_rows, snapshot.counts_by_source, str(final), created_at=started)
    return snapshot


# A staging directory older than this belongs to an export that was killed: no export of one
# snapshot takes an hour, and a younger one may be another worker's write in progress.
STALE_STAGING_SECONDS = 3600


def remove_stale_staging(out_root: Path, max_age_s: float = STALE_STAGING_SECONDS) -> list[Path]:
    """Delete staging directories that killed exports left behind; returns what was removed."""
    now = time.time()
    removed = []
    for path in out_root.glob(".*.tmp"):
        try:
            if path.is_dir() and now - path.stat().st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except FileNotFoundError:  # another process removed or renamed it meanwhile
            continue
    return removed


def load_snapshot(path: str | Path) -> datasets.Dataset:
    """A snapshot's rows; ``path`` is the snapshot directory or its ``dataset/`` directory."""
    import datasets

    path = Path(path)
    dataset_dir = path / "dataset" if (path / "dataset").is_dir() else path
    if not (dataset_dir / "dataset_info.json").is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is not a juryflow snapshot: pass <out_root>/<snapshot_id> from export_snapshot"
        )
    state = json.loads((dataset_dir / "state.json").read_text(encoding="utf-8"))
    if not state.get("_data_files"):  # datasets writes no shard for 0 rows and then cannot load it back
        info = json.loads((dataset_dir / "dataset_info.json").read_text(encoding="utf-8"))
        features = datasets.Features.from_dict(info["features"])
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.load_from_disk(str(dataset_dir))


def dataset_card(snapshot: Snapshot, routing: dict[str, Any], risk: LabelRisk | None = None) -> str:
    counts = "\n".join(f"| {source} | {n} |" for source, n in snapshot.counts_by_source.items()) or "| (none) | 0 |"
    thresholds = "\n".join(f"| {name} | {value} |" for name, value in sorted(routing.items())) or "| (none) | |"
    columns = "\n".join(f"| {name} | {kind} | {text} |" for name, (kind, text) in COLUMNS.items())
    return f"""---
pretty_name: juryflow preference snapshot {snapshot.snapshot_id}
task_categories: [text-classification]
tags: [rlhf, preference, juryflow]
---

# juryflow preference snapshot `{snapshot.snapshot_id}`

Pairwise preferences labeled by juryflow's hybrid pipeline: an AI labeler, a constitutional
judge (both A/B orders) and human review in Label Studio. Columns follow TRL's preference
format (`prompt`, `chosen`, `rejected`).

- Created: {snapshot.created_at}
- Rows: {snapshot.n_rows} (human ties are left out)
- Snapshot id: a content hash of the rows; the same labels always give the same id.

## Rows by label source

| source | rows |
|---|---|
{counts}

## Routing thresholds used

| setting | value |
|---|---|
{thresholds}

## Columns

| column | type | meaning |
|---|---|---|
{columns}

{(risk or LabelRisk()).card_section()}
## Loading

```python
from labeling.export import load_snapshot
dataset = load_snapshot("{snapshot.path}")
```
"""
