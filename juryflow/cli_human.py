"""``juryflow human``: human labels without Label Studio.

    juryflow human export-pending [--out pending.jsonl]   # the samples awaiting review, A/B as stored
    juryflow human import pending.jsonl                   # the same file, with `choice` filled in
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from labeling.errors import UserError

AB_HELP = ("A/B are juryflow's stored order, which is shuffled from your input file by sample id: "
           "answer about response_a/response_b as written in the exported file.")
app = typer.Typer(help=f"Human labels without Label Studio. {AB_HELP}", no_args_is_help=True)
console = Console(soft_wrap=True)


def _store():
    from labeling.settings import load_settings
    from tasks import resources

    cfg = load_settings()
    return cfg, resources.store(cfg)


@app.command("export-pending")
def export_pending(
    out: Annotated[Path, typer.Option(help="JSONL file to write")] = Path("pending.jsonl"),
    limit: Annotated[Optional[int], typer.Option(help="at most this many samples")] = None,
) -> None:
    """Write the samples awaiting human review, with ids and A/B texts exactly as `human import` reads them back.

    A/B are juryflow's stored order, shuffled from your input file by sample id (the file says so in
    its first line). Fill in `choice` (A, B or tie) and run `juryflow human import FILE`.
    """
    from labeling.human_import import write_pending
    from labeling.schemas import SampleState

    _, st = _store()
    ids = st.ids_in_state(SampleState.human_pending, limit=limit)
    n = write_pending(st.get_samples(ids), out)
    console.print(f"wrote {n} samples awaiting review to {out}; A/B as stored (shuffled from your input): "
                  f"fill in choice, then `juryflow human import {out}`")


@app.command("import")
def human_import(
    path: Annotated[Path, typer.Argument(help="JSONL: sample_id, choice (A|B|tie), annotator?, reason? "
                                              "(the file `human export-pending` writes)")],
) -> None:
    """Import human labels for samples awaiting review; re-importing never duplicates.

    A/B mean the stored order that `juryflow human export-pending` shows, not your input file's.
    """
    from labeling.human_import import import_human_labels

    if not path.is_file():
        raise UserError(f"labels file {str(path)!r} does not exist: write one with `juryflow human export-pending --out {path}`")
    cfg, st = _store()
    report = import_human_labels(st, path, cfg.labelstudio.max_annotators_on_tie)
    if report.imported == 0 and report.unchanged:
        console.print(f"unchanged: {report.unchanged} labels already imported")
    else:
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(report.outcomes.items())) or "none"
        unchanged = f" ({report.unchanged} unchanged)" if report.unchanged else ""
        console.print(f"imported {report.imported} labels{unchanged}; samples: {outcomes}")
    for sample_id, why in report.explanations.items():
        console.print(f"  needs more: sample {sample_id!r}: {why}")
    if report.unanswered:
        console.print(f"skipped {report.unanswered} rows with no choice yet")
    for p in report.rejected:
        console.print(f"[yellow]rejected[/yellow] {p.message}")
    if report.rejected:
        console.print(f"rejected {len(report.rejected)} rows (kept in quarantine; `juryflow status` lists them)")
