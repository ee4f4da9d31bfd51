"""``juryflow models``: the model registry and the training flows.

    juryflow models list [--kind reward_model|policy]
    juryflow models train-reward <snapshot_id> [--recipe recipes/reward_model.yaml]
    juryflow models finetune <reward_model_version> [--algorithm ppo|dpo|rloo|grpo] [--recipe ...]
    juryflow models export-for openrlhf|verl <snapshot_id>
    juryflow models serve-reward <reward_model_version> [--host 127.0.0.1] [--port 5000]
    juryflow models launch-ppo --engine openrlhf <reward_model_version> [--run]
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
    from tasks.training import run_flow_on_ranks

    check_recipe(recipe, "reward_model")  # a recipe mistake is one line, before the flow starts
    result = run_flow_on_ranks(train_reward_model, snapshot_id, recipe)  # under accelerate launch: rank 0 only
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
    from tasks.training import run_flow_on_ranks

    if algorithm not in ("ppo", "dpo", "rloo", "grpo"):
        raise typer.BadParameter(f"--algorithm {algorithm!r}: use ppo, dpo, rloo or grpo")
    check_recipe(recipe or f"recipes/{algorithm}.yaml", algorithm)  # one line, before the flow starts
    result = run_flow_on_ranks(finetune_policy, reward_model_version, algorithm, recipe)  # accelerate: rank 0 only
    console().print_json(json.dumps(result))
    console().print(training_line("finetune-policy", result), soft_wrap=True)


# PPO at scale is handed to OpenRLHF (or verl): exports, a reward server, the launch command.


@app.command("export-for")
def export_for(
    engine: Annotated[str, typer.Argument(help="openrlhf (reward-model/DPO pairs + PPO prompts) or verl (PPO prompts)")],
    snapshot_id: Annotated[str, typer.Argument(help="a snapshot under <data_dir>/snapshots/")],
    out: Annotated[Optional[str], typer.Option(help="output directory; default <data_dir>/exports/<engine>/<snapshot_id>")] = None,
) -> None:
    """Write a snapshot in the dataset format OpenRLHF or verl reads, with a manifest of the options to pass."""
    from labeling.settings import load_settings
    from models.training.external.handoff import export_snapshot_for

    manifest = export_snapshot_for(engine, load_settings().data_dir, snapshot_id, out)
    console().print_json(json.dumps(manifest))


@app.command("serve-reward")
def serve_reward(
    reward_model_version: Annotated[str, typer.Argument(help="a registered reward model (see `juryflow models list`)")],
    host: Annotated[str, typer.Option(help="address to bind; off loopback needs $JURYFLOW_REWARD_TOKEN")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port; 0 picks a free one")] = 5000,
    micro_batch_size: Annotated[int, typer.Option(help="texts per forward pass")] = 32,
    max_texts_per_request: Annotated[int, typer.Option(help="larger requests get 413")] = 1024,
    max_queued_requests: Annotated[int, typer.Option(help="requests waiting; more get 503")] = 256,
    strip_suffix: Annotated[Optional[list[str]], typer.Option(help="policy end-of-turn token to cut from responses, e.g. '<|im_end|>' (repeatable)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
) -> None:
    """Serve a reward model over HTTP: OpenRLHF's --reward.remote_url protocol (POST /get_reward) and POST /score."""
    import os

    from pydantic import ValidationError

    from labeling.errors import UserError
    from labeling.settings import load_settings
    from models.serving.reward_server import RewardServerConfig, check_bind, serve_registered_reward_model
    from models.training.registry import Registry

    try:
        config = RewardServerConfig(host=host, port=port, micro_batch_size=micro_batch_size,
                                    max_texts_per_request=max_texts_per_request, max_queued_requests=max_queued_requests,
                                    strip_suffixes=tuple(strip_suffix or ()), token=os.environ.get("JURYFLOW_REWARD_TOKEN") or None)
    except ValidationError as exc:
        raise UserError(f"serve-reward options: {exc.errors()[0]['loc'][0]} {exc.errors()[0]['msg']}") from None
    check_bind(config)  # before the model loads: a refused bind is one line, at once
    try:
        server = serve_registered_reward_model(Registry.from_settings(load_settings()), reward_model_version, config, device)
    except KeyError as exc:
        raise UserError(str(exc).strip("\"'")) from None
    typer.echo(f"serving reward model {reward_model_version} at {server.url}/get_reward (OpenRLHF --reward.remote_url) "
               f"and {server.url}/score; Ctrl-C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


@app.command("launch-ppo")
def launch_ppo(
    reward_model_version: Annotated[str, typer.Argument(help="a registered reward model; its snapshot gives the prompts")],
    engine: Annotated[str, typer.Option(help="openrlhf (Ray + vLLM); verl: use `export-for verl` and verl's launcher")] = "openrlhf",
    recipe: Annotated[str, typer.Option(help="PPO recipe: policy and hyperparameters")] = "recipes/ppo.yaml",
    snapshot: Annotated[Optional[str], typer.Option(help="prompts from this snapshot instead of the reward model's")] = None,
    reward_url: Annotated[str, typer.Option(help="the serve-reward endpoint OpenRLHF posts to")] = "http://127.0.0.1:5000/get_reward",
    nodes: Annotated[int, typer.Option(help="nodes per model role")] = 1,
    gpus_per_node: Annotated[int, typer.Option(help="GPUs per node for actor, critic and reference")] = 8,
    vllm_engines: Annotated[int, typer.Option(help="vLLM engines generating rollouts")] = 2,
    vllm_tensor_parallel_size: Annotated[int, typer.Option(help="GPUs per vLLM engine")] = 1,
    ray_address: Annotated[str, typer.Option(help="Ray dashboard address for `ray job submit`")] = "http://127.0.0.1:8265",
    out: Annotated[Optional[str], typer.Option(help="launch directory; default <data_dir>/launch/openrlhf-ppo-<version>")] = None,
    run: Annotated[bool, typer.Option("--run", help="submit the job now (needs ray and a running serve-reward)")] = False,
) -> None:
    """Write the pinned OpenRLHF PPO command (checked against its parser), and with --run submit it to Ray."""
    import os
    import subprocess

    from labeling.errors import UserError
    from labeling.settings import load_settings
    from models.training.config import read_recipe, resolve_recipe
    from models.training.external.handoff import prepare_openrlhf_ppo
    from models.training.external.openrlhf_launch import TOKEN_ENV, ClusterShape, check_ready_to_run
    from models.training.registry import Registry

    if engine != "openrlhf":
        raise typer.BadParameter(f"--engine {engine!r}: use openrlhf (for verl: `juryflow models export-for verl`)")
    flat = read_recipe(resolve_recipe(recipe))
    if flat.pop("__stage__", "ppo") != "ppo" or not flat.get("model_name_or_path"):
        raise UserError(f"recipe {recipe!r} is not a PPO recipe naming model.model_name_or_path: pass recipes/ppo.yaml")
    try:
        shape = ClusterShape(nodes, gpus_per_node, vllm_engines, vllm_tensor_parallel_size)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    settings = load_settings()
    manifest = prepare_openrlhf_ppo(settings.data_dir, Registry.from_settings(settings), reward_model_version, flat,
                                    reward_url, shape, ray_address, snapshot, out)
    console().print_json(json.dumps({k: v for k, v in manifest.items() if k != "command"}))
    typer.echo(f"wrote {manifest['script']}; start the reward server first: {manifest['serve_reward']}", err=True)
    if run:
        check_ready_to_run(manifest["reward_url"], os.environ.get(TOKEN_ENV))
        raise typer.Exit(subprocess.run(["bash", manifest["script"]], check=False).returncode)


if __name__ == "__main__":
    app()
