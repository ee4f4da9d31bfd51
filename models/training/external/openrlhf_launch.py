"""The pinned OpenRLHF PPO command (Ray + vLLM), built from a juryflow PPO recipe and checked against OpenRLHF's parser.

OpenRLHF 0.11.2 builds its parser under ``if __name__ == "__main__":`` in
``openrlhf/cli/train_ppo_ray.py``, so it cannot be imported; ``scripts/extract_openrlhf_options.py``
runs that block of the pinned wheel's source and writes every option (name, type, nargs,
choices, flag) to ``openrlhf_0.11.2_train_ppo_ray_options.json`` beside this file.
``check_arguments`` rebuilds an ``argparse`` parser from that table and parses the command with it,
so an unknown option, a missing value or a value of the wrong type fails here, not on the cluster.

The command is the one OpenRLHF's own examples run (``examples/scripts/train_ppo_with_reward_fn.sh``):
``ray job submit --address=... -- python3 -m openrlhf.cli.train_ppo_ray ...``, with juryflow's
prompt export and the reward server's URL (``juryflow models serve-reward``) filled in.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from models.training.external.openrlhf import OPENRLHF_VERSION, PPO_INPUT_KEY, PPO_LABEL_KEY

OPTIONS_FILE = Path(__file__).with_name(f"openrlhf_{OPENRLHF_VERSION}_train_ppo_ray_options.json")
ENTRYPOINT = ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
TOKEN_ENV = "JURYFLOW_REWARD_TOKEN"
TOKEN_PLACEHOLDER = "__JURYFLOW_REWARD_TOKEN__"  # stands in for $JURYFLOW_REWARD_TOKEN until bash runs the script

# juryflow PPO recipe key -> OpenRLHF 0.11.2 option with the same meaning (recipes/ppo.yaml).
RECIPE_OPTIONS = {
    "learning_rate": "--actor.adam.lr",
    "rollout_batch_size": "--rollout.batch_size",   # prompts per rollout
    "mini_batch_size": "--train.batch_size",        # samples per optimizer step (global)
    "ppo_epochs": "--train.max_epochs",             # passes over each rollout batch
    "max_new_tokens": "--rollout.max_new_tokens",
    "temperature": "--rollout.temperature",
    "gamma": "--algo.advantage.gamma",
    "lam": "--algo.advantage.lambd",
    "cliprange": "--actor.eps_clip",
    "cliprange_value": "--critic.value_clip",
    "init_kl_coef": "--algo.kl.init_coef",
    "kl_horizon": "--algo.kl.horizon",
    "max_grad_norm": "--actor.max_norm",
    "seed": "--train.seed",
}
# Recipe keys with no OpenRLHF counterpart (its critic is a separate model with its own optimizer,
# so there is no value-loss weight) or that only our loop reads; listed in the launch manifest.
NOT_CARRIED = ("vf_coef", "eval_max_prompts", "eval_fraction", "min_snapshot_size", "report_to", "bf16")


@dataclass(frozen=True)
class ClusterShape:
    """How many GPUs each OpenRLHF role gets: actor, critic and reference share the shape; vLLM engines generate."""

    num_nodes: int = 1
    gpus_per_node: int = 8
    vllm_engines: int = 2
    vllm_tensor_parallel_size: int = 1

    def __post_init__(self) -> None:
        for name in ("num_nodes", "gpus_per_node", "vllm_engines", "vllm_tensor_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"cluster {name}={getattr(self, name)}: must be >= 1")


def ppo_arguments(recipe: dict[str, Any], prompts_file: str | Path, reward_url: str, output_dir: str | Path,
                  shape: ClusterShape) -> list[str]:
    """train_ppo_ray's arguments for a juryflow PPO recipe (read with ``read_recipe``)."""
    args = [
        "--actor.model_name_or_path", str(recipe["model_name_or_path"]),
        "--reward.remote_url", reward_url,
        "--data.prompt_dataset", str(prompts_file),
        "--data.input_key", PPO_INPUT_KEY,
        "--data.label_key", PPO_LABEL_KEY,
        "--data.apply_chat_template",
        "--algo.advantage.estimator", "gae",  # PPO proper: a learned critic, as in models/training/ppo.py
        "--ckpt.output_dir", str(output_dir),
        "--ckpt.save_hf",
    ]
    for role in ("actor", "critic", "ref"):
        args += [f"--{role}.num_nodes", str(shape.num_nodes), f"--{role}.num_gpus_per_node", str(shape.gpus_per_node)]
    args += ["--vllm.num_engines", str(shape.vllm_engines),
             "--vllm.tensor_parallel_size", str(shape.vllm_tensor_parallel_size)]
    for key, option in RECIPE_OPTIONS.items():
        if recipe.get(key) is not None:
            args += [option, str(recipe[key])]
    if recipe.get("adaptive_kl") and recipe.get("target_kl") is not None:
        args += ["--algo.kl.target", str(recipe["target_kl"])]  # OpenRLHF's KL controller is adaptive when set
    if recipe.get("num_iterations") and recipe.get("rollout_batch_size"):
        # Our loop runs num_iterations rollouts of rollout_batch_size prompts; OpenRLHF walks the
        # prompt set, so cap it at the same number of prompts.
        args += ["--data.max_samples", str(int(recipe["num_iterations"]) * int(recipe["rollout_batch_size"]))]
    if recipe.get("gradient_checkpointing"):
        args += ["--actor.gradient_checkpointing_enable"]
    return args


def ray_job_command(ppo_args: list[str], ray_address: str, working_dir: str | Path) -> list[str]:
    runtime_env = json.dumps({"working_dir": str(working_dir)})
    return ["ray", "job", "submit", f"--address={ray_address}", f"--runtime-env-json={runtime_env}", "--",
            *ENTRYPOINT, *ppo_args]


def shell_script(command: list[str], token_in_url: bool) -> str:
    """A bash script running ``command``; the reward URL's token, if any, is read from the environment when it runs."""
    lines = ["#!/usr/bin/env bash", f"# OpenRLHF {OPENRLHF_VERSION} PPO, written by `juryflow models launch-ppo`.",
             "set -euo pipefail"]
    if token_in_url:
        lines.append(f': "${{{TOKEN_ENV}:?set {TOKEN_ENV} to the reward server token}}"')
    quoted = [shlex.quote(part) for part in command]
    if token_in_url:  # the one expansion left to bash: the token never lands in this file
        quoted = [q.replace(TOKEN_PLACEHOLDER, f"'\"${{{TOKEN_ENV}}}\"'") for q in quoted]
    groups: list[list[str]] = []
    for part in quoted:  # one option and its values per line, as OpenRLHF's example scripts read
        if not groups or part.lstrip("'").startswith("--"):
            groups.append([])
        groups[-1].append(part)
    lines.append(" \\\n  ".join(" ".join(g) for g in groups))
    return "\n".join(lines) + "\n"


class _CheckingParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print usage and exit 2
        raise ValueError(message)


@cache
def option_table() -> dict[str, dict[str, Any]]:
    payload = json.loads(OPTIONS_FILE.read_text(encoding="utf-8"))
    if payload["openrlhf_version"] != OPENRLHF_VERSION:
        raise ValueError(f"{OPTIONS_FILE.name} is for openrlhf {payload['openrlhf_version']}, not {OPENRLHF_VERSION}: "
                         "rerun scripts/extract_openrlhf_options.py on the pinned wheel")
    return payload["options"]


def check_arguments(args: list[str], options: dict[str, dict[str, Any]] | None = None) -> argparse.Namespace:
    """Parse ``args`` with a parser rebuilt from the pinned release's option table; ValueError names the problem."""
    parser = _CheckingParser(prog="openrlhf.cli.train_ppo_ray", add_help=False, allow_abbrev=False)
    types = {"int": int, "float": float, "str": str}
    for name, spec in (options or option_table()).items():
        if spec["flag"]:
            parser.add_argument(name, dest=spec["dest"], action="store_true")
        else:
            parser.add_argument(name, dest=spec["dest"], type=types[spec["type"] or "str"], nargs=spec["nargs"],
                                choices=spec["choices"])
    try:
        return parser.parse_args(args)
    except ValueError as exc:
        raise ValueError(f"OpenRLHF {OPENRLHF_VERSION} train_ppo_ray rejects the command: {exc}") from None


def reward_url_for_launch(reward_url: str) -> str:
    """The URL OpenRLHF posts to; off loopback the server wants a token, which only OpenRLHF's URL can carry.

    The token itself is never taken in: the script and launch.json are files people share, so the
    script adds it from $JURYFLOW_REWARD_TOKEN when it runs.
    """
    from urllib.parse import parse_qs, urlsplit

    from labeling.errors import UserError
    from models.serving.reward_server import is_loopback

    parts = urlsplit(reward_url)
    given = parse_qs(parts.query).get("token")
    if given and given != [TOKEN_PLACEHOLDER]:
        raise UserError(f"--reward-url for {parts.hostname}{parts.path} carries a token: drop ?token=...; "
                        f"the launch script adds it from ${TOKEN_ENV} when it runs")
    if is_loopback(parts.hostname or "") or given:
        return reward_url
    return f"{reward_url}{'&' if '?' in reward_url else '?'}token={TOKEN_PLACEHOLDER}"


def write_launch(launch_dir: str | Path, recipe: dict[str, Any], prompts_file: str | Path, reward_url: str,
                 shape: ClusterShape, ray_address: str) -> dict[str, Any]:
    """Write ``launch_ppo.sh`` and ``launch.json`` into ``launch_dir``, after checking the command; returns launch.json."""
    launch_dir = Path(launch_dir).resolve()
    url = reward_url_for_launch(reward_url)
    args = ppo_arguments(recipe, Path(prompts_file).resolve(), url, launch_dir / "checkpoint", shape)
    check_arguments(args)
    command = ray_job_command(args, ray_address, launch_dir)
    launch_dir.mkdir(parents=True, exist_ok=True)
    script = launch_dir / "launch_ppo.sh"
    script.write_text(shell_script(command, token_in_url=TOKEN_PLACEHOLDER in url), encoding="utf-8")
    script.chmod(0o755)
    manifest = {
        "engine": "openrlhf",
        "openrlhf_version": OPENRLHF_VERSION,
        "script": str(script),
        "command": command,
        "reward_url": url,
        "checked_against": OPTIONS_FILE.name,
        "recipe_keys_not_carried": sorted(k for k in NOT_CARRIED if k in recipe),
    }
    (launch_dir / "launch.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def check_ready_to_run(reward_url: str, token: str | None) -> None:
    """Refuse ``--run`` in one line when Ray is not installed or the reward server does not answer."""
    import shutil
    import urllib.request
    from urllib.parse import urlsplit, urlunsplit

    from labeling.errors import UserError

    if shutil.which("ray") is None:
        raise UserError(f"`ray` is not on PATH: install OpenRLHF on the cluster (pip install openrlhf[vllm]=="
                        f"{OPENRLHF_VERSION}) and start Ray (`ray start --head`), then rerun with --run")
    parts = urlsplit(reward_url)
    health = urlunsplit((parts.scheme, parts.netloc, "/health", "", ""))
    request = urllib.request.Request(health, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except OSError as exc:
        raise UserError(f"reward server {health} does not answer ({type(exc).__name__}): start it with "
                        "`juryflow models serve-reward <version>` first") from None
