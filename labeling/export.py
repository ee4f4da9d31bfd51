"""Versioned, TRL-ready snapshots of the merged labels.

``<out_root>/<snapshot_id>/`` holds ``dataset/`` (``datasets.save_to_disk``), ``data.parquet``,
``README.md`` (the dataset card) and ``snapshot.json``. The id is a hash of the rows, so the same
labels always give the same snapshot and a re-export rewrites nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from labeling.label_risk import LabelRisk, estimate_label_risk
from labeling.schemas import content_hash
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


def snapshot_rows(store: Store, risk: LabelRisk | None = None) -> list[dict[str, Any]]:
    """One row per labeled sample, sorted by sample_id. Human ties have no preference and are left out."""
    risk = risk if risk is not None else estimate_label_risk(store)
    rows = []
    for sample, label in store.iter_labeled():
        if label.preferred == "tie":
            continue
        a_wins = label.preferred == "A"
        rows.append(
            {
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
        )
    return rows


def export_snapshot(store: Store, out_root: Path, routing: dict[str, Any]) -> Snapshot:
    """Write the current labels as a snapshot (or find the identical one) and record it in the store."""
    import datasets

    started = datetime.now(UTC)  # labels written after this moment count towards the next snapshot
    risk = estimate_label_risk(store)
    rows = snapshot_rows(store, risk)
    snapshot_id = content_hash(rows)
    out_root = Path(out_root)
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
        counts = dict(sorted(Counter(r["source"] for r in rows).items()))
        snapshot = Snapshot(
            snapshot_id=snapshot_id,
            path=final,
            n_rows=len(rows),
            counts_by_source=counts,
            created_at=started.isoformat(timespec="seconds"),
        )
        features = datasets.Features({name: datasets.Value(kind) for name, (kind, _) in COLUMNS.items()})
        # Write beside the final place, then rename: readers never see half a snapshot.
        staging = out_root / f".{snapshot_id}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        # from_dict, not from_list: from_list cannot build an empty dataset even with features given.
        dataset = datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS}, features=features)
        dataset.save_to_disk(str(staging / "dataset"))
        dataset.to_parquet(str(staging / "data.parquet"))
        (staging / "README.md").write_text(dataset_card(snapshot, routing, risk), encoding="utf-8")
        meta = {**snapshot.model_dump(mode="json", exclude={"path"}), "routing": routing, "columns": list(COLUMNS)}
        (staging / "snapshot.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        try:
            staging.rename(final)
        except OSError:  # another process exported the same rows first; theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
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
