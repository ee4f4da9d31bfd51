"""Readers: every row of a JSONL(.gz) file, a Parquet file or a local `datasets` directory, as a RawRecord.

A row that cannot be read at all (bad bytes, JSON the decoder refuses, a non-object) becomes a
RawRecord with an ``error`` naming the fix; the rows after it are still read.
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENERIC_COLUMNS = {"prompt", "response_a", "response_b"}
HH_COLUMNS = {"chosen", "rejected"}
_PARQUET_BATCH = 4_096


@dataclass(frozen=True)
class RawRecord:
    """One input row: its parsed object, or why it could not be read (``field`` names the culprit)."""

    source: str
    row: int | None
    data: dict[str, Any] | None = None
    error: str | None = None
    field: str = "(row)"


class _IntegerTooLong(ValueError):
    """An integer literal longer than Python's int-string limit (sys.get_int_max_str_digits())."""


def _parse_int(literal: str) -> int:
    limit, digits = sys.get_int_max_str_digits(), len(literal.lstrip("-"))
    if limit and digits > limit:
        raise _IntegerTooLong(f"an integer literal of {digits:,} digits")
    return int(literal)


_DECODER = json.JSONDecoder(parse_int=_parse_int)  # one instance: json.loads(..., parse_int=) builds one per call


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
        data = _DECODER.decode(text.rstrip("\r\n"))
    except json.JSONDecodeError as exc:
        return RawRecord(
            source,
            row,
            error=f"not valid JSON ({exc.msg}: column {exc.colno}); the line may be "
            "truncated: write one complete JSON object per line",
        )
    # The decoder fails in other ways too; each is this row's problem, never the file's.
    except RecursionError:
        return RawRecord(
            source,
            row,
            error=f"nests arrays or objects deeper than the JSON decoder can follow (about {sys.getrecursionlimit():,} "
            "levels): flatten the row, or store the nested part as a string",
        )
    except _IntegerTooLong as exc:
        return RawRecord(
            source,
            row,
            error=f"has {exc}, over Python's limit of {sys.get_int_max_str_digits():,}: write such numbers as strings",
        )
    except ValueError as exc:
        return RawRecord(source, row, error=f"the JSON decoder rejected the line ({exc}): fix or drop the row")
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
