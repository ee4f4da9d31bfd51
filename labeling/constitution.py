"""The written constitution the judge applies: a YAML data file of principles."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labeling.schemas import unit_hash


class Principle(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9_.-]+$")
    text: str = Field(min_length=1)


class Constitution(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    principles: list[Principle] = Field(min_length=1)

    @field_validator("principles")
    @classmethod
    def _unique_ids(cls, principles: list[Principle]) -> list[Principle]:
        ids = [p.id for p in principles]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"principle ids must be unique; repeated: {dupes}")
        return principles

    @property
    def digest(self) -> str:
        """A hash of the principles' ids and texts: any edited word gives another digest."""
        text = "\n".join(f"{p.id}\t{p.text}" for p in self.principles)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    @property
    def identity(self) -> str:
        """``<name>@<version>#<digest>``: part of the judge version, so verdicts say which text judged them."""
        return f"{self.name}@{self.version}#{self.digest}"

    def sample_principles(self, sample_id: str, k: int | None) -> list[Principle]:
        """A subset of k principles, seeded by the sample id (as in Constitutional AI, Bai et al. 2022)."""
        if k is None or k >= len(self.principles):
            return list(self.principles)
        ranked = sorted(self.principles, key=lambda p: unit_hash("principle", sample_id, p.id))
        chosen = {p.id for p in ranked[:k]}
        return [p for p in self.principles if p.id in chosen]  # keep the file's order


def load_constitution(path: str | Path) -> Constitution:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"constitution file {str(path)!r} not found: set judge.constitution_path") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"constitution file {str(path)!r} is not valid YAML: {exc}") from None
    try:
        return Constitution.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"constitution file {str(path)!r} is invalid: {exc}") from None
