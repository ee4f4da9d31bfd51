"""`juryflow evaluate`: replay a labeled file through calibrated, guaranteed routing.

juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --splits 100 --out eval-hh
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Evaluate routing cost against quality on a labeled file.")
console = Console(soft_wrap=True)  # one message, one line: logs and grep read it whole


@app.command("evaluate")
def evaluate(
    data: Annotated[
        Path, typer.Option("--data", help="labeled JSONL[.gz]/Parquet/datasets dir (reference labels = humans)")
    ],
    folds: Annotated[int, typer.Option(help="cross-validation folds: each fold is scored by a labeler fitted on the others")] = 5,
    splits: Annotated[int, typer.Option(help="random calibration/test splits for the guarantee check")] = 100,
    out: Annotated[Path, typer.Option(help="directory for report.json and the PNG plots")] = Path("juryflow-eval"),
    calibration_share: Annotated[
        float, typer.Option(help="share of samples playing the audit (calibration) set")
    ] = 0.5,
    alpha: Annotated[float | None, typer.Option(help="override routing.alpha")] = None,
    delta: Annotated[float | None, typer.Option(help="override routing.delta")] = None,
    labeler: Annotated[
        str, typer.Option(help="labeler fitted per fold: embedding (seconds) or cross-encoder (minutes per fold)")
    ] = "embedding",
    recipe: Annotated[Path, typer.Option(help="reward-model recipe for --labeler cross-encoder")] = Path(
        "recipes/labeler_cross_encoder.yaml"
    ),
    scores: Annotated[
        Path | None,
        typer.Option(help="reuse an earlier run's out_of_fold.jsonl instead of fitting (e.g. to try another alpha)"),
    ] = None,
) -> None:
    """Cost-quality curves (random, fixed threshold, guaranteed) and the guarantee check over splits.

    Runs the ``evaluate-routing`` flow, so the report and plot are also Prefect artifacts.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from models.labelers.folds import LABELER_KINDS

    if labeler not in LABELER_KINDS:
        _fail(f"--labeler {labeler!r}: use one of {', '.join(LABELER_KINDS)}")
    if labeler == "cross-encoder" and scores is None and not recipe.is_file():
        _fail(f"--recipe {recipe} does not exist: pass recipes/labeler_cross_encoder.yaml or your own")
    if not data.exists():
        _fail(f"--data {data} does not exist: pass a labeled JSONL/Parquet file")
    if scores is not None and not scores.is_file():
        _fail(f"--scores {scores} does not exist: pass the out_of_fold.jsonl of an earlier run")
    if folds < 2:
        _fail(f"--folds {folds}: use 2 or more, so no sample is scored by a labeler fitted on it")

    from flows.evaluate_routing import evaluate_routing

    if labeler == "cross-encoder" and scores is None:
        console.print(f"fine-tuning {folds} cross-encoders, one per fold: minutes each on a CPU")
    try:
        report = evaluate_routing(
            data=str(data), out=str(out), folds=folds, splits=splits, calibration_share=calibration_share,
            alpha=alpha, delta=delta, labeler=labeler, recipe=str(recipe),
            scores=None if scores is None else str(scores),
        )  # fmt: skip
    except ValueError as exc:  # bad data or scores: the message names the sample and the field
        _fail(str(exc))
    if report["skipped_rows"]:
        console.print(f"[yellow]{report['skipped_rows']} rows of {data} were skipped (see the flow's log)[/yellow]")
    if scores is not None:
        console.print(f"reusing out-of-fold p_a of the {report['labeler']} labeler from {scores}")
    _print_summary(report, out)


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(2)


def _print_summary(report: dict[str, Any], out: Path) -> None:
    g = report["guarantee"]
    table = Table(title=f"routing evaluation, {report['n_samples']} samples")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for k, v in report["labeler_accuracy"].items():
        table.add_row(f"labeler accuracy, {k.replace('_', ' ')}", f"{v:.1%}")
    table.add_row("ECE raw (equal-mass, 10 bins)", f"{report['ece_raw_all']:.3f}")
    table.add_row(f"coverage at alpha={g['alpha']}, delta={g['delta']}", f"{g['mean_coverage']:.1%}")
    auto = g["mean_auto_agreement"]
    table.add_row("agreement of auto-labels", "n/a" if auto is None else f"{auto:.1%}")
    table.add_row("final dataset agreement", f"{g['mean_final_agreement']:.1%}")
    pop = report["population_check"]
    table.add_row(
        f"violation rate, file as population ({pop['n_draws']} draws)",
        f"{pop['population_violation_rate']:.1%} (delta {g['delta']})",
    )
    table.add_row(f"efficiency (coverage / oracle {pop['oracle_coverage']:.1%})", f"{pop['efficiency'] or 0:.2f}")
    table.add_row(f"split check: test-split error > alpha ({g['n_splits']} splits)", f"{g['violation_rate']:.1%}")
    table.add_row("splits with a qualifying threshold", f"{g['share_with_threshold']:.0%}")
    whole = report["whole_file_threshold"]
    table.add_row("whole file as calibration set", whole["status"])
    if whole.get("next_step_labels") is not None:
        table.add_row(
            "audit labels to certify the next coverage step",
            f"{whole['next_step_labels']} more, for {whole['next_step_coverage']:.1%}",
        )
    console.print(table)
    console.print(f"report: {out / 'report.json'}; plots: {report['plot']}, {report['reliability_plot']}")
