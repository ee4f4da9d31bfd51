"""``juryflow demo``: the whole labeling flow on generated data, offline, on the embedded defaults."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console


def run_demo(console: Console, n: int, fit_n: int, data_dir: Path) -> dict:
    started = time.perf_counter()
    data_dir = data_dir.resolve()
    os.environ["JURYFLOW__DATA_DIR"] = str(data_dir)
    from labeling.ingest import load_records, parse_records
    from labeling.settings import load_settings
    from labeling.synthetic import generate, write_jsonl

    cfg = load_settings()
    rows = generate(fit_n + n, seed=0)
    fit_path = write_jsonl(rows[:fit_n], data_dir / "demo" / "fit.jsonl")
    run_path = write_jsonl(rows[fit_n:], data_dir / "demo" / "samples.jsonl")
    console.print(f"[bold]1/3[/bold] generated {fit_n} labeled + {n} unlabeled samples in {run_path.parent}")

    # Fit the AI labeler first, so the run shows routing rather than a cold start.
    from models.labelers.embedding import fit_embedding_head

    fit_samples, _ = parse_records(load_records(fit_path), cfg.ingest)
    head_dir = data_dir / "labelers" / "demo-embedding-head"
    with console.status("fitting the embedding labeler (all-MiniLM-L6-v2 + logistic head)..."):
        head = fit_embedding_head(fit_samples, [s.reference_label for s in fit_samples], head_dir)
    os.environ["JURYFLOW__LABELER__BACKEND"] = "embedding"
    os.environ["JURYFLOW__LABELER__MODEL_PATH"] = str(head_dir)
    console.print(f"[bold]2/3[/bold] fitted the AI labeler: {head}")

    if not load_settings().judge.model_path:
        console.print(
            "[bold yellow]NOTE[/bold yellow]: no judge model is configured, so the demo judge is a tiny "
            "[bold]randomly initialised[/bold] model built locally. Its verdicts are meaningless placeholders "
            "that only exercise the wiring. Set judge.model_path for real verdicts."
        )
    from flows.label_batch import label_batch

    summary = label_batch(str(run_path))
    console.print("[bold]3/3[/bold] label_batch finished:")
    console.print_json(data={k: v for k, v in summary.items() if k != "snapshot_path"})
    console.print(f"[bold green]exported dataset:[/bold green] {summary['snapshot_path']}")
    console.print(f"human review queue: {summary['human_pending']} samples (`juryflow status`, `juryflow human import`)")
    console.print(f"demo took {time.perf_counter() - started:.0f} s")
    return summary
