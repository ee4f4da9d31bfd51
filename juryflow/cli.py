"""The ``juryflow`` console command."""

from __future__ import annotations

import flows  # noqa: F401 - first: it sets Prefect's environment defaults before Prefect is imported

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from juryflow import cli_evaluate, cli_human, cli_labeler, cli_labelstudio, cli_models
from juryflow.cli_support import UserErrorGroup, note_demo_config, use_demo_config_by_default

app = typer.Typer(help="Hybrid human/AI preference labeling for RLHF.", no_args_is_help=True, add_completion=False,
                  cls=UserErrorGroup)
app.add_typer(cli_human.app, name="human")
app.add_typer(cli_labeler.app, name="labeler", help="Fit and inspect the AI labeler.")
app.add_typer(cli_evaluate.app)  # the `juryflow evaluate` command
app.add_typer(cli_labelstudio.app, name="labelstudio", help="Run the local Label Studio server.")
app.add_typer(cli_models.app, name="models", help="Reward models and policies: train, gate, list.")
console = Console(soft_wrap=True)  # one message, one line: logs and grep read it whole


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="show full tracebacks, also for user errors")] = False,
) -> None:
    """Hybrid human/AI preference labeling for RLHF. User mistakes print one line and exit 2."""
    # `debug` is read from the root context by UserErrorGroup when a command fails.
    if ctx.invoked_subcommand not in ("demo", "generate"):  # the demo keeps its own settings
        note_demo_config(use_demo_config_by_default())


def _settings():
    from labeling.settings import load_settings

    return load_settings()  # a SettingsError becomes one line and exit 2 (UserErrorGroup)


@app.command()
def run(
    input_path: Annotated[Optional[Path], typer.Argument(help="JSONL, Parquet or datasets dir; omit to only process stored samples")] = None,
    critique: Annotated[Optional[bool], typer.Option("--critique/--no-critique", help="judge writes per-principle critiques")] = None,
) -> None:
    """Run the label_batch flow once (ingest, label, route, judge, merge, export)."""
    from juryflow.preflight import check_input_path

    _settings()
    check_input_path(input_path)
    from flows.label_batch import label_batch
    from flows.summaries import label_batch_line

    summary = label_batch(str(input_path) if input_path else None, critique=critique)
    console.print_json(json.dumps(summary, default=str))
    console.print(label_batch_line(summary), soft_wrap=True)


@app.command()
def demo(
    n: Annotated[int, typer.Option(help="samples to label in the run")] = 400,
    fit_n: Annotated[int, typer.Option(help="labeled samples used to fit the AI labeler first")] = 300,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its store and exports")] = Path("juryflow-demo"),
    labelstudio: Annotated[bool, typer.Option("--labelstudio/--no-labelstudio", help="push the review queue to the demo's own local Label Studio (never the one your settings name)")] = True,
) -> None:
    """End-to-end demo on generated data, fully offline, on its own settings (<data-dir>/juryflow.yaml)."""
    from juryflow.demo import run_demo

    run_demo(console, n=n, fit_n=fit_n, data_dir=data_dir, labelstudio=labelstudio)


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="JSONL file to write")],
    n: Annotated[int, typer.Option(help="rows")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write a synthetic preference set with a learnable signal."""
    from labeling.synthetic import generate as gen, write_jsonl

    console.print(f"wrote {write_jsonl(gen(n, seed=seed), out)}")


@app.command()
def export() -> None:
    """Write a versioned snapshot of the merged labels (datasets dir + Parquet)."""
    _settings()  # fail early, with the settings' own message
    from tasks.publish import export_dataset

    snap = export_dataset.fn()  # the flow's export, outside a flow run: same thresholds recorded
    console.print(f"snapshot {snap.snapshot_id}: {snap.n_rows} rows at {snap.path}")


@app.command()
def status() -> None:
    """Where every sample is, what was quarantined, and what the AI side is doing."""
    cfg = _settings()
    from labeling.status import collect_status

    report = collect_status(cfg)
    table = Table(title=f"juryflow status ({cfg.data_dir})")
    table.add_column("state")
    table.add_column("samples", justify="right")
    for state, count in report["states"].items():
        table.add_row(state, str(count))
    console.print(table)
    for line in report["notes"]:
        console.print(line)
    if report["agreement"]:
        agreement = Table(title="human agreement (Label Studio)")
        for column in report["agreement"][0]:
            agreement.add_column(column)
        for row in report["agreement"]:
            agreement.add_row(*(str(v) for v in row.values()))
        console.print(agreement)
    if report["quarantine"]:
        console.print(f"[yellow]quarantine: {report['quarantine_total']} rows[/yellow] (latest shown)")
        for message in report["quarantine"]:
            console.print(f"  - {message}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # python -m juryflow.cli, where the console script is not on PATH
    main()
