"""`juryflow evaluate`: replay a labeled file through calibrated, guaranteed routing.

juryflow evaluate --data ../shared/data/hh-rlhf-harmless-dev.jsonl.gz --folds 5 --splits 100 --out eval-hh
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

app = typer.Typer(help="Evaluate routing cost against quality on a labeled file.")
console = Console()


def publish_report_artifacts(report: dict[str, Any]) -> bool:
    """Publish the report and plot as Prefect artifacts when called inside a flow run."""
    from prefect.artifacts import create_image_artifact, create_markdown_artifact
    from prefect.context import FlowRunContext

    if FlowRunContext.get() is None:
        return False
    g = report["guarantee"]
    figures = json.dumps({k: v for k, v in report.items() if k != "cost_quality"}, indent=1)
    create_markdown_artifact(
        key="routing-evaluation",
        markdown=(
            f"## Routing evaluation ({report['n_samples']} samples)\n\n"
            f"alpha {g['alpha']}, delta {g['delta']}: coverage {g['mean_coverage']:.1%}, "
            f"auto-label agreement {g['mean_auto_agreement']}, violation rate {g['violation_rate']:.1%} "
            f"over {g['n_splits']} splits\n\n```json\n{figures}\n```"
        ),
    )
    create_image_artifact(image_url=Path(report["plot"]).resolve().as_uri(), key="routing-cost-quality")
    return True


@app.command("evaluate")
def evaluate(
    data: Annotated[
        Path, typer.Option("--data", help="labeled JSONL[.gz]/Parquet/datasets dir (reference labels = humans)")
    ],
    folds: Annotated[int, typer.Option(help="cross-validation folds for the embedding head")] = 5,
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
) -> None:
    """Cost-quality curves (random, fixed threshold, guaranteed) and the guarantee check over splits."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from labeling.evaluate import LABELER_KINDS, build_report, out_of_fold_p_a
    from labeling.ingest import load_records, parse_records
    from labeling.settings import load_settings

    cfg = load_settings()
    r = cfg.routing
    if labeler not in LABELER_KINDS:
        console.print(f"[red]--labeler {labeler!r}: use one of {', '.join(LABELER_KINDS)}[/red]")
        raise typer.Exit(2)
    if labeler == "cross-encoder" and not recipe.is_file():
        console.print(
            f"[red]--recipe {recipe} does not exist: pass recipes/labeler_cross_encoder.yaml or your own[/red]"
        )
        raise typer.Exit(2)
    if not data.exists():
        console.print(f"[red]--data {data} does not exist: pass a labeled JSONL/Parquet file[/red]")
        raise typer.Exit(2)
    samples, problems = parse_records(load_records(data), cfg.ingest)
    for p in problems[:10]:
        console.print(f"[yellow]skipped: {p.message}[/yellow]")
    samples = [s for s in samples if s.reference_label is not None]
    if len(samples) < 2 * folds:
        console.print(
            f"[red]{data} has {len(samples)} labeled samples: need at least {2 * folds} for {folds} folds[/red]"
        )
        raise typer.Exit(2)
    console.print(f"{len(samples)} labeled samples ({len(problems)} rows skipped) from {data}")

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="juryflow-eval-") as work, Progress(console=console) as progress:
        bar = progress.add_task(f"fitting {labeler} labelers (cross-validation)", total=folds)
        p_a = out_of_fold_p_a(
            samples,
            folds,
            Path(work),
            progress=lambda done, _: progress.update(bar, completed=done),
            labeler=labeler,
            recipe=recipe,
        )
    report = build_report(
        samples,
        p_a,
        alpha=alpha if alpha is not None else r.alpha,
        delta=delta if delta is not None else r.delta,
        n_splits=splits,
        calibration_share=calibration_share,
        min_calibration_size=r.min_calibration_size,
        method=r.calibration_method,
        out_dir=out,
    )
    report.update(
        {
            "data": str(data),
            "folds": folds,
            "labeler": labeler,
            "calibration_method": r.calibration_method,
            "skipped_rows": len(problems),
        }
    )
    (out / "report.json").write_text(json.dumps(report, indent=1))
    with (out / "out_of_fold.jsonl").open("w") as fh:  # re-analyse without re-encoding
        for s, p in zip(samples, p_a, strict=True):
            fh.write(json.dumps({"sample_id": s.sample_id, "p_a": float(p), "reference": s.reference_label}) + "\n")
    publish_report_artifacts(report)
    _print_summary(report, out)


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
    table.add_row(f"violation rate over {g['n_splits']} splits", f"{g['violation_rate']:.1%} (delta {g['delta']})")
    table.add_row("splits with a qualifying threshold", f"{g['share_with_threshold']:.0%}")
    whole = report["whole_file_threshold"]
    table.add_row("whole file as calibration set", whole["status"])
    console.print(table)
    console.print(f"report: {out / 'report.json'}; plots: {report['plot']}, {report['reliability_plot']}")
