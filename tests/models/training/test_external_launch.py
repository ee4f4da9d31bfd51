"""``launch-ppo --engine openrlhf``: the command parses under the pinned OpenRLHF's options, files and URL filled in.

The option table was generated from the openrlhf==0.11.2 wheel's own parser code by
scripts/extract_openrlhf_options.py (see models/training/external/openrlhf_launch.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juryflow.cli import app
from models.training.config import read_recipe
from models.training.external.openrlhf_launch import (
    OPTIONS_FILE,
    ClusterShape,
    check_arguments,
    option_table,
    ppo_arguments,
    ray_job_command,
    shell_script,
)
from tests.models.training.synthetic import preference_rows, write_snapshot

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def test_option_table_is_the_pinned_release() -> None:
    payload = json.loads(OPTIONS_FILE.read_text())
    assert payload["openrlhf_version"] == "0.11.2" and payload["source"] == "openrlhf/cli/train_ppo_ray.py"
    table = option_table()
    assert table["--reward.remote_url"]["type"] == "str" and table["--data.apply_chat_template"]["flag"]
    assert table["--algo.advantage.estimator"]["choices"][0] == "gae"


@pytest.mark.parametrize("recipe", ["ppo.yaml", "test/ppo.yaml"])
def test_ppo_command_parses_with_openrlhfs_options(recipe: str) -> None:
    flat = read_recipe(RECIPES / recipe)
    flat.pop("__stage__")
    args = ppo_arguments(flat, "/data/prompts.jsonl", "http://10.0.0.5:5000/get_reward", "/ckpt", ClusterShape(2, 4, 3, 2))
    parsed = vars(check_arguments(args))
    assert parsed["actor.model_name_or_path"] == flat["model_name_or_path"]
    assert parsed["reward.remote_url"] == "http://10.0.0.5:5000/get_reward"
    assert parsed["data.prompt_dataset"] == "/data/prompts.jsonl" and parsed["data.apply_chat_template"] is True
    assert (parsed["data.input_key"], parsed["data.label_key"]) == ("prompt", "label")
    assert parsed["actor.adam.lr"] == flat["learning_rate"] and parsed["rollout.batch_size"] == flat["rollout_batch_size"]
    assert (parsed["actor.num_nodes"], parsed["critic.num_gpus_per_node"], parsed["vllm.num_engines"]) == (2, 4, 3)
    assert parsed["vllm.tensor_parallel_size"] == 2 and parsed["algo.advantage.estimator"] == "gae"
    command = ray_job_command(args, "http://127.0.0.1:8265", "/launch")
    assert command[:3] == ["ray", "job", "submit"] and command[command.index("--") + 1:][:3] == ["python3", "-m",
                                                                                              "openrlhf.cli.train_ppo_ray"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--remote_rm_url", "http://x"], "unrecognized arguments: --remote_rm_url"),  # the pre-0.11 spelling
        (["--rollout.batch_size", "many"], "invalid int value: 'many'"),
        (["--algo.advantage.estimator", "ppo"], "invalid choice: 'ppo'"),
        (["--actor.adam.betas", "0.9"], "expected 2 arguments"),
    ],
)
def test_a_wrong_argument_is_refused_by_name(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match="train_ppo_ray rejects the command") as info:
        check_arguments(args)
    assert message in str(info.value)


def test_script_reads_the_token_from_the_environment_never_holds_it() -> None:
    from models.training.external.openrlhf_launch import reward_url_for_launch

    url = reward_url_for_launch("http://10.0.0.5:5000/get_reward")
    assert reward_url_for_launch("http://127.0.0.1:5000/get_reward") == "http://127.0.0.1:5000/get_reward"
    script = shell_script(["echo", url], token_in_url=True)
    assert "__JURYFLOW" not in script and "token='\"${JURYFLOW_REWARD_TOKEN}\"'" in script
    import subprocess

    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "JURYFLOW_REWARD_TOKEN": "tok"}, check=True).stdout
    assert out.strip() == "http://10.0.0.5:5000/get_reward?token=tok"


def test_a_reward_url_that_carries_a_token_is_refused_without_echoing_it() -> None:
    from labeling.errors import UserError
    from models.training.external.openrlhf_launch import reward_url_for_launch

    with pytest.raises(UserError, match="carries a token: drop") as info:
        reward_url_for_launch("http://10.0.0.5:5000/get_reward?token=s3cret-value")
    assert "s3cret-value" not in str(info.value)
    placeholder = "http://10.0.0.5:5000/get_reward?token=__JURYFLOW_REWARD_TOKEN__"
    assert reward_url_for_launch(placeholder) == placeholder  # already the script's stand-in: kept


def test_launch_ppo_cli_writes_the_script_and_refuses_run_without_ray(tmp_path: Path, clean_env, tiny_reward_model_dir) -> None:
    from models.training.registry import Registry

    data_dir = tmp_path / "data"
    clean_env.setenv("JURYFLOW__DATA_DIR", str(data_dir))
    snapshot_id = write_snapshot(data_dir / "snapshots", preference_rows(8, seed=5))
    registry = Registry(data_dir / "registry")
    version = "20260101T000000000000-launch00"
    shutil.copytree(tiny_reward_model_dir, registry.model_dir("reward_model", version))
    registry.register("reward_model", version, snapshot_id=snapshot_id, recipe={}, metrics={}, parent_model=None)

    result = CliRunner().invoke(app, ["models", "launch-ppo", version, "--gpus-per-node", "2"], terminal_width=200)
    assert result.exit_code == 0, result.output
    manifest = json.loads((data_dir / "launch" / f"openrlhf-ppo-{version}" / "launch.json").read_text())
    script = Path(manifest["script"]).read_text()
    prompts = data_dir / "exports" / "openrlhf" / snapshot_id / "prompts.jsonl"
    assert prompts.is_file() and str(prompts.resolve()) in script and "http://127.0.0.1:5000/get_reward" in script
    assert "--actor.model_name_or_path Qwen/Qwen2.5-0.5B-Instruct" in script and manifest["recipe_keys_not_carried"]

    clean_env.setenv("PATH", str(tmp_path / "empty-bin"))  # no `ray` here
    refused = CliRunner().invoke(app, ["models", "launch-ppo", version, "--run"], terminal_width=200)
    assert refused.exit_code == 2 and "`ray` is not on PATH" in refused.output, refused.output
    unknown = CliRunner().invoke(app, ["models", "launch-ppo", "no-such-version"], terminal_width=200)
    assert unknown.exit_code == 2 and "no reward_model version 'no-such-version'" in unknown.output, unknown.output
