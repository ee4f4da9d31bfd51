"""Read preference data (JSONL[.gz], Parquet, a local `datasets` directory) into validated samples.

A bad row never stops the batch: it becomes a ``QuarantineRecord`` naming the sample, the field
and the fix, and the good rows carry on. Text is stored literally (HTML, template syntax, RTL
marks included); nothing here interprets it. Modules: ``readers`` (files to RawRecords),
``validation`` (one field at a time), ``parse`` (rows to samples), ``into_store`` (a whole file into the store).
"""

from labeling.ingest.into_store import check_input_path, ingest_file, ingest_records
from labeling.ingest.parse import parse_records
from labeling.ingest.readers import GENERIC_COLUMNS, HH_COLUMNS, RawRecord, load_records
from labeling.ingest.validation import (
    HH_MARKER,
    ROLES,
    FieldProblem,
    InputRow,
    check_metadata,
    check_text,
    is_invisible,
    shows_nothing,
    split_hh,
)

__all__ = [
    "GENERIC_COLUMNS",
    "HH_COLUMNS",
    "HH_MARKER",
    "ROLES",
    "FieldProblem",
    "InputRow",
    "RawRecord",
    "check_input_path",
    "check_metadata",
    "check_text",
    "ingest_file",
    "ingest_records",
    "is_invisible",
    "load_records",
    "parse_records",
    "shows_nothing",
    "split_hh",
]
