"""A whole input file into the store, in chunks: validate, insert new samples, quarantine the rest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from labeling.errors import UserError
from labeling.ingest.parse import parse_records
from labeling.ingest.readers import RawRecord, load_records
from labeling.schemas import QuarantineRecord
from labeling.settings import IngestSettings

if TYPE_CHECKING:
    from labeling.store import Store


def check_input_path(path: str | Path | None) -> None:
    """Refuse, as a user error, an input that cannot be read: checked by the CLI before a flow starts,
    and again here for runs that start elsewhere (a deployment's parameters)."""
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise UserError(f"input file {str(p)!r} does not exist: pass a JSONL (.jsonl, .jsonl.gz), Parquet or datasets directory")
    if p.is_dir() and not any(p.iterdir()):
        raise UserError(f"input directory {str(p)!r} is empty: pass a `datasets` directory saved with save_to_disk")


def ingest_file(
    store: Store,
    path: str | Path,
    ingest_settings: IngestSettings,
    on_quarantine: Callable[[QuarantineRecord], None] | None = None,
) -> dict[str, int]:
    """Load, validate and store a file; rejected rows go to quarantine and the rest carry on.

    The file is read lazily and stored in chunks (``ingest_records``), so its size never matters
    to memory; re-ingesting the same file inserts nothing. ``on_quarantine`` sees each rejected
    row (the task logs the first few). Returns read / inserted / unchanged / quarantined.
    """
    check_input_path(path)
    path = Path(path)
    return ingest_records(store, load_records(path), str(path), ingest_settings, on_quarantine)


def ingest_records(
    store: Store,
    records: Iterable[RawRecord],
    source: str,
    ingest_settings: IngestSettings,
    on_quarantine: Callable[[QuarantineRecord], None] | None = None,
) -> dict[str, int]:
    """Validate and store rows from any iterable, ``ingest_settings.batch_size`` at a time.

    Only one chunk is ever held: ``records`` may be a lazy reader of a file of any length, and it
    is not advanced past the chunk being stored. The store resolves ids across chunks (a repeated
    id in a later chunk is unchanged or a conflict), so chunking never changes the outcome.
    """
    totals: Counter[str] = Counter(read=0, inserted=0, unchanged=0, quarantined=0)
    rows = iter(records)
    while chunk := list(islice(rows, ingest_settings.batch_size)):
        samples, rejected = parse_records(chunk, ingest_settings)
        result = store.add_samples(samples, source=source)
        problems = [*rejected, *result.conflicts]
        store.add_quarantine(problems)
        for record in problems if on_quarantine else ():
            on_quarantine(record)
        totals.update(
            read=len(chunk), inserted=len(result.inserted), unchanged=len(result.unchanged), quarantined=len(problems)
        )
    return dict(totals)
