"""``juryflow demo``: the whole labeling flow on generated data, offline, on the embedded defaults."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from rich.console import Console


def _start_labelstudio(cfg, console: Console):
    """Start the managed local Label Studio in the background; the first start migrates for ~1 min."""
    from labeling.labelstudio.server import LabelStudioServer

    server = LabelStudioServer(cfg.data_dir, port=cfg.labelstudio.port)
    outcome: dict = {}

    def start() -> None:
        try:
            server.start()
            outcome["server"] = server
        except Exception as exc:  # noqa: BLE001 - reported to the user below; the demo goes on without it
            outcome["error"] = exc

    thread = threading.Thread(target=start, name="labelstudio-start", daemon=True)
    thread.start()
    console.print(f"starting Label Studio in the background ({server.url}; first start installs and migrates)")
    return thread, outcome


def run_demo(console: Console, n: int, fit_n: int, data_dir: Path, labelstudio: bool = True) -> dict:
    started = time.perf_counter()
    data_dir = data_dir.resolve()
    os.environ["JURYFLOW__DATA_DIR"] = str(data_dir)
    from labeling.ingest import load_records, parse_records
    from labeling.settings import load_settings
    from labeling.synthetic import generate, write_jsonl

    cfg = load_settings()
    ls_start = _start_labelstudio(cfg, console) if labelstudio and not cfg.labelstudio.url else None
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
    demo_config = _write_demo_config(data_dir, head_dir)

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
    if ls_start is not None:
        _push_to_labelstudio(console, *ls_start, demo_config)
    elif cfg.labelstudio.url:
        from flows.harvest_reviews import harvest_reviews

        harvest_reviews()
        console.print(f"pushed the review queue to your Label Studio at {cfg.labelstudio.url}")
    else:
        console.print(f"human review queue: {summary['human_pending']} samples (`juryflow human import`)")
    console.print(
        f"the demo's settings are in {demo_config}: `export JURYFLOW_CONFIG={demo_config}` to keep using them "
        "(`juryflow status`, `python -m flows.harvest_reviews`, `juryflow labelstudio down`)"
    )
    console.print(f"demo took {time.perf_counter() - started:.0f} s")
    return summary


def _write_demo_config(data_dir: Path, head_dir: Path) -> Path:
    """The demo's own settings file, so later commands see the same store and labeler."""
    import yaml

    from labeling.labelstudio.server import write_private

    path = data_dir / "juryflow.yaml"
    settings = {"data_dir": str(data_dir), "labeler": {"backend": "embedding", "model_path": str(head_dir)}}
    write_private(path, yaml.safe_dump(settings, sort_keys=False))  # Label Studio's token is added to it below
    return path


def _push_to_labelstudio(console: Console, thread: threading.Thread, outcome: dict, demo_config: Path) -> None:
    with console.status("waiting for Label Studio to finish starting..."):
        thread.join()
    if "error" in outcome:
        console.print(f"[yellow]Label Studio did not start ({outcome['error']}); the queue stays in the store.[/yellow]")
        return
    from labeling.labelstudio.server import record_in_settings_file

    server = outcome["server"]
    os.environ["JURYFLOW__LABELSTUDIO__URL"] = server.url
    os.environ["JURYFLOW__LABELSTUDIO__API_KEY"] = server.token
    record_in_settings_file(demo_config, server.url, server.token)  # the demo's file, not your juryflow.yaml
    from flows.harvest_reviews import harvest_reviews

    result = harvest_reviews()
    creds = server.credentials()
    console.print(
        f"[bold green]Label Studio:[/bold green] {result['pushed']['created']} review tasks at {server.url} "
        f"(project {result['project_id']}); log in as {creds['username']} / {creds['password']}"
    )
    console.print("  label there, then collect the answers with the harvest flow (below); it keeps running")
