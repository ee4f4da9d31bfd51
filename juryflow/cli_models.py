"""``juryflow models``: the model registry and the training flows.

    juryflow models list [--kind reward_model|policy]
    juryflow models train-reward <snapshot_id> [--recipe recipes/reward_model.yaml]
    juryflow models finetune <reward_model_version> [--algorithm ppo|dpo|rloo|grpo] [--recipe ...]
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Reward models and policies: train, gate, list.", no_args_is_help=True)


def console() -> Console:
    """Made per command: rich reads the terminal width (COLUMNS) once, when a Console is built."""
    return Console(soft_wrap=True)


def _headline(metrics: dict) -> str:
    heldout = metrics.get("heldout") or {}
    keys = ("accuracy", "rm_score_after", "win_rate_vs_reference", "kl_to_reference", "preference_accuracy")
    parts = [f"{k}={heldout[k]:.3f}" for k in keys if isinstance(heldout.get(k), float)]
    if "gate" in metrics:
        parts.append(f"baseline={metrics['gate']['baseline_accuracy']:.3f}")
    return " ".join(parts) or "-"


@app.command("list")
def list_models(
    kind: Annotated[Optional[str], typer.Option(help="reward_model or policy; default both")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metadata as JSON")] = False,
) -> None:
    """Registered model versions, newest last, with status and held-out numbers."""
    from labeling.settings import load_settings
    from models.training.registry import Registry

    if kind not in (None, "reward_model", "policy"):
        raise typer.BadParameter(f"--kind {kind!r}: use reward_model or policy")
    registry = Registry.from_settings(load_settings())
    records = registry.list(kind)  # type: ignore[arg-type]
    if as_json:
        console().print_json(json.dumps([r.model_dump(mode="json") for r in records]))
        return
    table = Table(title=f"model registry: {registry.root}")
    for col in ("kind", "version", "status", "snapshot", "parent", "held-out", "git", "created"):
        # The version is what the next command is typed with: never cut it, whatever the width.
        table.add_column(col, no_wrap=col == "version", min_width=30 if col == "version" else None)
    colors = {"promoted": "green", "rejected": "red", "candidate": "yellow"}
    for r in records:
        table.add_row(r.kind, r.version, f"[{colors[r.status]}]{r.status}[/]", (r.snapshot_id or "-")[:12],
                      str(r.parent_model or "-")[-30:], _headline(r.metrics), r.git_commit[:8], r.created_at[:19])
    console().print(table)
    if not records:
        console().print("no models yet: `juryflow models train-reward <snapshot_id>` trains the first one")


@app.command("train-reward")
def train_reward(
    snapshot_id: Annotated[str, typer.Argument(help="a snapshot under <data_dir>/snapshots/")],
    recipe: Annotated[str, typer.Option(help="reward-model recipe YAML")] = "recipes/reward_model.yaml",
) -> None:
    """Train a reward model on a snapshot, gate it against the current AI labeler, promote or reject."""
    from flows.summaries import training_line
    from flows.train_reward_model import train_reward_model
    from juryflow.preflight import check_recipe

    check_recipe(recipe, "reward_model")  # a recipe mistake is one line, before the flow starts
    result = train_reward_model(snapshot_id, recipe)
    console().print_json(json.dumps(result))
    console().print(training_line("train-reward-model", result), soft_wrap=True)


@app.command()
def finetune(
    reward_model_version: Annotated[str, typer.Argument(help="a promoted reward model (see `juryflow models list`)")],
    algorithm: Annotated[str, typer.Option(help="ppo, dpo, rloo or grpo")] = "ppo",
    recipe: Annotated[Optional[str], typer.Option(help="recipe YAML; default recipes/<algorithm>.yaml")] = None,
) -> None:
    """Fine-tune the SFT policy against a reward model and report before/after on held-out prompts."""
    from flows.finetune_policy import finetune_policy
    from flows.summaries import training_line
    from juryflow.preflight import check_recipe

    if algorithm not in ("ppo", "dpo", "rloo", "grpo"):
        raise typer.BadParameter(f"--algorithm {algorithm!r}: use ppo, dpo, rloo or grpo")
    check_recipe(recipe or f"recipes/{algorithm}.yaml", algorithm)  # one line, before the flow starts
    result = finetune_policy(reward_model_version, algorithm, recipe)
    console().print_json(json.dumps(result))
    console().print(training_line("finetune-policy", result), soft_wrap=True)


if __name__ == "__main__":
    app()
