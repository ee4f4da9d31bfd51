"""Read preference data (JSONL[.gz], Parquet, a local `datasets` directory) into validated samples.

A bad row never stops the batch: it becomes a ``QuarantineRecord`` naming the sample, the field
and the fix, and the good rows carry on. Text is stored literally (HTML, template syntax, RTL
marks included); nothing here interprets it.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from labeling.schemas import ChatMessage, QuarantineRecord, Sample, content_hash, unit_hash
from labeling.settings import IngestSettings

HH_MARKER = "\n\nAssistant:"
ROLES = ("system", "user", "assistant")
GENERIC_COLUMNS = {"prompt", "response_a", "response_b"}
HH_COLUMNS = {"chosen", "rejected"}
_KNOWN = {"sample_id", "prompt", "response_a", "response_b", "metadata", "preferred", "reference_label"}
_PARQUET_BATCH = 4_096


@dataclass(frozen=True)
class RawRecord:
    """One input row: its parsed object, or why it could not be read (``field`` names the culprit)."""

    source: str
    row: int | None
    data: dict[str, Any] | None = None
    error: str | None = None
    field: str = "(row)"


class FieldProblem(ValueError):
    """A row's field is unusable; ``field`` may be more precise than pydantic's location (``prompt[2].role``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def load_records(path: str | Path) -> Iterator[RawRecord]:
    """Every row of a JSONL(.gz) file, Parquet file or local `datasets` directory, in order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"input {str(path)!r} does not exist: pass a .jsonl, .jsonl.gz, .parquet file or a datasets directory"
        )
    if path.is_dir():
        yield from _load_datasets_dir(path)
    elif path.name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
        yield from _load_jsonl(path)
    elif path.suffix == ".parquet":
        yield from _load_parquet(path)
    else:
        raise ValueError(
            f"input {str(path)!r} has an unknown format: use .jsonl, .jsonl.gz, .parquet or a datasets directory"
        )


def _load_jsonl(path: Path) -> Iterator[RawRecord]:
    source = str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    row, n_rows = 0, 0
    try:
        with opener(path, "rb") as f:
            for row, line in enumerate(f, start=1):
                record = _parse_line(source, row, line)
                n_rows += record.error != ""
                yield record
    except (EOFError, OSError, zlib.error) as exc:  # a truncated or corrupt .gz: report where it stopped
        yield RawRecord(
            source, row + 1, error=f"cannot read past this row ({exc}): re-download or re-compress the file"
        )
        return
    if n_rows == 0:
        yield RawRecord(source, None, field="(rows)", error="the file has no rows: check the export that wrote it")


def _parse_line(source: str, row: int, line: bytes) -> RawRecord:
    if row == 1 and line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]  # a UTF-8 byte-order mark, as some editors write
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RawRecord(
            source,
            row,
            error=f"invalid UTF-8 at byte {exc.start} ({line[exc.start : exc.start + 4]!r}): "
            "re-encode the file as UTF-8",
        )
    if not text.strip():
        return RawRecord(source, row, error="")  # blank line: skipped, not an error
    try:
        data = json.loads(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return RawRecord(
            source,
            row,
            error=f"not valid JSON ({exc.msg}: column {exc.colno}); the line may be "
            "truncated: write one complete JSON object per line",
        )
    if not isinstance(data, dict):
        return RawRecord(
            source,
            row,
            error=f"a JSON {type(data).__name__} where an object was expected: write one "
            '{"prompt": ..., "response_a": ..., "response_b": ...} object per line',
        )
    return RawRecord(source, row, data=data)


def _load_parquet(path: Path) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    source = str(path)
    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file  # noqa: BLE001
        yield RawRecord(source, None, error=f"not a readable parquet file ({exc}): rewrite it with pyarrow or pandas")
        return
    columns = set(pfile.schema_arrow.names)
    if not (GENERIC_COLUMNS <= columns or HH_COLUMNS <= columns):
        yield RawRecord(source, None, field="(schema)", error=_schema_message(columns))
        return
    row = 0
    for batch in pfile.iter_batches(batch_size=_PARQUET_BATCH):
        for data in batch.to_pylist():
            row += 1
            yield RawRecord(source, row, data=data)


def _load_datasets_dir(path: Path) -> Iterator[RawRecord]:
    import datasets

    if (path / "dataset_dict.json").is_file():  # a DatasetDict: its 'train' split, else every split
        names = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        names = ["train"] if "train" in names else names
        splits = [(f"{path}[{name}]", path / name) for name in names]
        if not splits:
            yield RawRecord(
                str(path), None, field="(rows)", error="the DatasetDict has no splits: save a 'train' split"
            )
    elif (path / "state.json").is_file():
        splits = [(str(path), path)]
    else:
        yield RawRecord(
            str(path),
            None,
            field="(directory)",
            error="not a `datasets` directory (no state.json or dataset_dict.json): "
            "save it with Dataset.save_to_disk()",
        )
        return
    for source, split_dir in splits:
        state = json.loads((split_dir / "state.json").read_text(encoding="utf-8"))
        if not state.get("_data_files"):  # datasets writes no shard for 0 rows and then cannot load it
            yield RawRecord(
                source, None, field="(rows)", error="the dataset has no rows: check the export that wrote it"
            )
            continue
        split = datasets.Dataset.load_from_disk(str(split_dir))
        columns = set(split.column_names)
        if not (GENERIC_COLUMNS <= columns or HH_COLUMNS <= columns):
            yield RawRecord(source, None, field="(schema)", error=_schema_message(columns))
            continue
        if split.num_rows == 0:
            yield RawRecord(
                source, None, field="(rows)", error="the dataset has no rows: check the export that wrote it"
            )
            continue
        for row, data in enumerate(split, start=1):
            yield RawRecord(source, row, data=data)


def _schema_message(columns: set[str]) -> str:
    return (
        f"columns {sorted(columns)} match neither input shape: need {sorted(GENERIC_COLUMNS)} "
        f"(plus optional sample_id, metadata, preferred) or HH-RLHF's {sorted(HH_COLUMNS)}"
    )


# -- validation ---------------------------------------------------------------------------------


def check_text(value: Any, field: str, max_chars: int) -> str:
    """The text itself, or a FieldProblem saying what is wrong and how to fix it."""
    if value is None:
        raise FieldProblem(field, f"is null: give `{field}` as text")
    if not isinstance(value, str):
        raise FieldProblem(
            field, f"is {_short(value)} of type {type(value).__name__}, not text: make `{field}` a string"
        )
    if not value.strip():
        raise FieldProblem(field, f"is empty or whitespace-only: give `{field}` real text, or drop the row")
    if "\x00" in value:
        raise FieldProblem(
            field, f"contains a NUL character at position {value.index(chr(0))}: remove the \\u0000 characters"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FieldProblem(
            field,
            f"contains a lone surrogate U+{ord(value[exc.start]):04X} at position {exc.start} "
            "(broken UTF-16): re-encode the source text as valid UTF-8",
        ) from None
    if len(value) > max_chars:
        raise FieldProblem(
            field,
            f"is {len(value):,} characters, over ingest.max_chars={max_chars:,}: shorten it, "
            "or raise the limit with JURYFLOW__INGEST__MAX_CHARS",
        )
    return value


def check_metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldProblem(
            field,
            f"is a {type(value).__name__} ({_short(value)}): make it an object, "
            'e.g. {"tags": [...]}, or leave it out',
        )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FieldProblem(field, f"is not plain JSON ({exc}): keep to strings, numbers, lists and objects") from None
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class InputRow(BaseModel):
    """The generic input shape. Validators raise FieldProblem so each message carries its fix."""

    model_config = ConfigDict(extra="allow")

    sample_id: str | None = None
    prompt: str | list[ChatMessage]
    response_a: str
    response_b: str
    metadata: dict[str, Any] = {}
    preferred: str | None = None
    reference_label: str | None = None

    @field_validator("sample_id", mode="before")
    @classmethod
    def _id(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # numeric ids are common in exported datasets
        value = check_text(value, "sample_id", 256)
        if value != value.strip():
            raise FieldProblem("sample_id", f"{value!r} has leading/trailing whitespace: strip it")
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any, info: ValidationInfo) -> str | list[ChatMessage]:
        max_chars = info.context["max_chars"]
        if not isinstance(value, list):
            return check_text(value, "prompt", max_chars)
        if not value:
            raise FieldProblem("prompt", 'is an empty chat: give at least one {"role": "user", "content": ...} message')
        messages = []
        for i, message in enumerate(value):
            if not isinstance(message, dict):
                raise FieldProblem(
                    f"prompt[{i}]",
                    f"is {_short(message)} of type {type(message).__name__}: "
                    'make each message a {"role": ..., "content": ...} object',
                )
            if message.get("role") not in ROLES:
                raise FieldProblem(
                    f"prompt[{i}].role", f"is {_short(message.get('role'))}: use one of {', '.join(ROLES)}"
                )
            extra = set(message) - {"role", "content"}
            if extra:
                raise FieldProblem(f"prompt[{i}]", f"has unexpected keys {sorted(extra)}: keep only role and content")
            content = check_text(message.get("content"), f"prompt[{i}].content", max_chars)
            messages.append(ChatMessage(role=message["role"], content=content))
        return messages

    @field_validator("response_a", "response_b", mode="before")
    @classmethod
    def _response(cls, value: Any, info: ValidationInfo) -> str:
        return check_text(value, str(info.field_name), info.context["max_chars"])

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> dict[str, Any]:
        return check_metadata(value)

    @field_validator("preferred", "reference_label", mode="before")
    @classmethod
    def _label(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if value not in ("A", "B"):
            raise FieldProblem(str(info.field_name), f'is {_short(value)}: use "A" or "B", or leave it out')
        return value

    @model_validator(mode="after")
    def _pair(self) -> InputRow:
        if self.response_a.strip() == self.response_b.strip():
            raise FieldProblem(
                "response_b",
                "is identical to response_a: a preference pair needs two different "
                "responses; drop the row or fix the copy",
            )
        if self.preferred and self.reference_label and self.preferred != self.reference_label:
            raise FieldProblem(
                "reference_label", f"{self.reference_label!r} contradicts preferred={self.preferred!r}: keep one"
            )
        return self


def split_hh(chosen: Any, rejected: Any, max_chars: int) -> tuple[str, str, str]:
    """HH-RLHF transcripts -> (shared prompt up to the last Assistant turn, chosen reply, rejected reply)."""
    chosen = check_text(chosen, "chosen", 10 * max_chars)
    rejected = check_text(rejected, "rejected", 10 * max_chars)
    prefixes = []
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        cut = text.rfind(HH_MARKER)
        if cut < 0:
            raise FieldProblem(
                field, "has no '\\n\\nAssistant:' turn: an HH-RLHF transcript ends with '\\n\\nAssistant: <reply>'"
            )
        prefixes.append(text[: cut + len(HH_MARKER)])
    if prefixes[0] != prefixes[1]:
        at = next((i for i, (a, b) in enumerate(zip(*prefixes, strict=False)) if a != b), min(map(len, prefixes)))
        raise FieldProblem(
            "rejected",
            f"its dialogue before the last Assistant turn differs from chosen's at character {at}: "
            "both transcripts must share the prompt; fix the pair or drop the row",
        )
    prompt = check_text(prefixes[0], "prompt", max_chars)
    replies = []
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        reply = text[len(prompt) :].strip()
        if not reply:
            raise FieldProblem(field, "its final Assistant reply is empty: a pair needs two replies; drop the row")
        replies.append(check_text(reply, field, max_chars))
    return prompt, replies[0], replies[1]


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
        quarantine_id = given_id if isinstance(given_id, str) and given_id.strip() else fallback_id
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
    return field, f"{err['msg']} (got {_short(err.get('input'))}): fix `{field}`"
