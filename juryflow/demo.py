"""``juryflow demo``: the whole labeling flow on generated data, offline, on the embedded defaults.

The demo keeps to its own settings file (``<data_dir>/juryflow.yaml``) and its own Label Studio
server: your ``./juryflow.yaml`` and ``JURYFLOW__`` variables (other than the judge's) are ignored,
so demo tasks never land in a Label Studio project the demo did not create.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from juryflow.cli_support import DEMO_CONFIG

# The judge's settings are the one thing a user may bring to the demo (a real judge model).
KEPT_ENV_PREFIX = "JURYFLOW__JUDGE__"


def _start_labelstudio(cfg, console: Console):
    """Start the demo's own local Label Studio in the background; the first start migrates for ~1 min."""
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
    console.print(f"starting the demo's own Label Studio in the background ({server.url}; first start installs and migrates)")
    return thread, outcome


def isolate_settings(data_dir: Path) -> tuple[Path, list[str]]:
    """Point this process at the demo's settings file and drop the user's ``JURYFLOW__`` variables.

    Returns the demo's settings path and the names of the variables ignored.
    """
    dropped = sorted(k for k in os.environ if k.startswith("JURYFLOW__") and not k.startswith(KEPT_ENV_PREFIX))
    for key in dropped:
        del os.environ[key]
    demo_config = data_dir / "juryflow.yaml"
    os.environ["JURYFLOW_CONFIG"] = str(demo_config)
    return demo_config, dropped


def run_demo(console: Console, n: int, fit_n: int, data_dir: Path, labelstudio: bool = True) -> dict:
    started = time.perf_counter()
    data_dir = data_dir.resolve()
    demo_config, dropped = isolate_settings(data_dir)
    if dropped:
        console.print(f"the demo runs on its own settings ({demo_config}); ignoring {', '.join(dropped)}")
    _write_demo_config(demo_config, data_dir, head_dir=None)
    from labeling.ingest import load_records, parse_records
    from labeling.settings import load_settings
    from labeling.synthetic import generate, write_jsonl

    cfg = load_settings()
    ls_start = _start_labelstudio(cfg, console) if labelstudio else None
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
    _write_demo_config(demo_config, data_dir, head_dir)
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
    if ls_start is not None:
        _push_to_labelstudio(console, *ls_start, demo_config)
    else:
        console.print(f"human review queue: {summary['human_pending']} samples "
                      "(`juryflow human export-pending`, then `juryflow human import`)")
    _print_next_steps(console, demo_config)
    console.print(f"demo took {time.perf_counter() - started:.0f} s")
    return summary


def _print_next_steps(console: Console, demo_config: Path) -> None:
    if (Path.cwd() / DEMO_CONFIG).resolve() == demo_config.resolve() and not Path("juryflow.yaml").exists():
        console.print(f"next: `juryflow status`, `juryflow human export-pending`, `python -m flows.harvest_reviews` "
                      f"use the demo's settings ({DEMO_CONFIG}) by default here, while there is no ./juryflow.yaml",
                      soft_wrap=True)
    else:
        console.print(f"next: `export JURYFLOW_CONFIG={demo_config}`, then `juryflow status` "
                      "(`juryflow human export-pending`, `python -m flows.harvest_reviews`)", soft_wrap=True)
    prefect = Path(sys.executable).parent / "prefect"
    console.print(f"the demo's Prefect runs (logs, artifacts): run `{prefect} server start`, then open "
                  "http://127.0.0.1:4200/runs", soft_wrap=True)


def _write_demo_config(path: Path, data_dir: Path, head_dir: Path | None) -> Path:
    """The demo's own settings file, so later commands see the same store and labeler."""
    import yaml

    from labeling.labelstudio.server import write_private

    settings: dict = {"data_dir": str(data_dir)}
    if head_dir is not None:
        settings["labeler"] = {"backend": "embedding", "model_path": str(head_dir)}
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
    record_in_settings_file(demo_config, server.url, server.token)  # the demo's file, not your juryflow.yaml
    from flows.harvest_reviews import harvest_reviews

    result = harvest_reviews()
    creds = server.credentials()
    console.print(
        f"[bold green]Label Studio:[/bold green] {result['pushed']['created']} review tasks at {server.url} "
        f"(project {result['project_id']}, created by the demo); log in as {creds['username']} / {creds['password']}"
    )
    console.print("  label there, then collect the answers with the harvest flow (below); the server keeps running "
                  "(`juryflow labelstudio down` stops it)")
