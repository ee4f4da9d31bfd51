"""A model registry as plain directories: ``<root>/<kind>/<version>/{model/, metadata.json}``.

Why directories: every trainer and labeler already reads a Hugging Face model directory, so the
artifact needs no conversion, and the layout maps one-to-one onto an object store
(``s3://bucket/registry/reward_model/<version>/``) when the root becomes an fsspec URL; only
``_write_json``/``_read_json`` and the copy of the artifact would change. Local paths for now.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from labeling.schemas import content_hash

Kind = Literal["reward_model", "policy"]
Status = Literal["candidate", "promoted", "rejected"]


class ModelRecord(BaseModel):
    kind: Kind
    version: str
    snapshot_id: str | None
    recipe: dict[str, Any]
    recipe_path: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    parent_model: str | None = None
    git_commit: str
    created_at: str
    status: Status = "candidate"
    status_reason: str | None = None


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def from_settings(cls, settings) -> Registry:
        return cls(Path(settings.data_dir) / "registry")

    def version_dir(self, kind: Kind, version: str) -> Path:
        return self.root / kind / version

    def model_dir(self, kind: Kind, version: str) -> Path:
        """The artifact: a Hugging Face model directory (weights + tokenizer)."""
        return self.version_dir(kind, version) / "model"

    def new_version(self, kind: Kind, snapshot_id: str | None, recipe: dict[str, Any]) -> str:
        """A sortable, unique version name: UTC time plus a hash of what it was trained from."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        return f"{stamp}-{content_hash(kind, snapshot_id, recipe, stamp)[:8]}"

    def register(
        self,
        kind: Kind,
        version: str,
        *,
        snapshot_id: str | None,
        recipe: dict[str, Any],
        metrics: dict[str, Any],
        parent_model: str | None,
        recipe_path: str | None = None,
    ) -> ModelRecord:
        if not self.model_dir(kind, version).is_dir():
            raise FileNotFoundError(
                f"no artifact at {self.model_dir(kind, version)}: save the model there before registering {version}"
            )
        record = ModelRecord(
            kind=kind,
            version=version,
            snapshot_id=snapshot_id,
            recipe=recipe,
            recipe_path=recipe_path,
            metrics=metrics,
            parent_model=parent_model,
            git_commit=git_commit(),
            created_at=datetime.now(UTC).isoformat(),
        )
        self._write(record)
        return record

    def get(self, kind: Kind, version: str) -> ModelRecord:
        meta = self.version_dir(kind, version) / "metadata.json"
        if not meta.is_file():
            known = [r.version for r in self.list(kind)]
            raise KeyError(f"no {kind} version {version!r} in registry {self.root}; known versions: {known[-5:]}")
        return ModelRecord.model_validate_json(meta.read_text())

    def set_status(self, kind: Kind, version: str, status: Status, reason: str, metrics: dict | None = None) -> ModelRecord:
        record = self.get(kind, version)
        update: dict[str, Any] = {"status": status, "status_reason": reason}
        if metrics:
            update["metrics"] = {**record.metrics, **metrics}
        record = record.model_copy(update=update)
        self._write(record)
        return record

    def list(self, kind: Kind | None = None) -> list[ModelRecord]:
        kinds = [kind] if kind else ["reward_model", "policy"]
        records = []
        for k in kinds:
            for meta in sorted((self.root / k).glob("*/metadata.json")):
                records.append(ModelRecord.model_validate_json(meta.read_text()))
        return records

    def _write(self, record: ModelRecord) -> None:
        meta = self.version_dir(record.kind, record.version) / "metadata.json"
        tmp = meta.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True))
        tmp.replace(meta)  # atomic on POSIX: a reader never sees half a file
