"""Training on two processes (`accelerate launch`, gloo on CPU): one flow run, one version, one gate,
the same result on every rank, and the accuracy of a one-process run on the same data and seed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.models.training.conftest import RECIPES, write_recipe

REPO = Path(__file__).resolve().parents[3]


def _launch_two(*module_and_args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``python -m <module> <args>`` on 2 CPU processes, talking to the test harness.

    On a machine without GPUs, ``--multi_gpu`` is what starts torchrun's N processes (``--cpu`` alone runs
    one); the recipes' ``use_cpu: true`` makes them gloo ranks on the CPU.
    """
    from prefect.settings import PREFECT_API_URL

    cmd = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), "-m", *module_and_args]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def _runs_of(flow_name: str, recipe: Path) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [r for r in runs if r.parameters.get("recipe") == str(recipe)]


@pytest.mark.slow
def test_two_processes_register_one_reward_model_as_good_as_one_process(
        prefect_harness, juryflow_env, snapshot_in_data_dir, base_reward_model, trained_reward_model, task_rows):
    from datasets import Dataset

    from labeling.settings import load_settings
    from models.training.data import split_by_sample_id
    from models.training.evaluate import pairwise_accuracy
    from models.training.loading import load_reward_model
    from models.training.registry import Registry
    from tasks import resources

    # The one-process reference (trained_reward_model) used the test recipe at 16 pairs per step; two
    # processes at 8 each make the same global batch, so DDP's averaged gradient is the same step.
    recipe = write_recipe(RECIPES / "test" / "reward_model.yaml", juryflow_env / "rm-2proc.yaml",
                          model={"model_name_or_path": base_reward_model},
                          training={"per_device_train_batch_size": 8, "ddp_find_unused_parameters": False})
    done = _launch_two("flows.train_reward_model", snapshot_in_data_dir, str(recipe))

    # Every rank printed rank 0's result: the same version.
    # Not anchored at a line's start: the two ranks share one stdout, and one's line can follow the
    # other's before its newline is written.
    finished = re.findall(r"train-reward-model finished: version (\S+),", done.stdout)
    assert len(finished) == 2 and len(set(finished)) == 1, done.stdout[-3000:]
    settings = load_settings()
    records = Registry.from_settings(settings).list()
    assert [r.version for r in records] == finished[:1]  # one version, not one per rank
    record = records[0]
    assert record.status == "promoted" and record.metrics["n_processes"] == 2
    assert resources.store(settings).get_record("labeler", "active")["version"] == record.version
    runs = _runs_of("train-reward-model", recipe)  # one flow run: only rank 0 talks to Prefect
    assert len(runs) == 1 and runs[0].state.is_completed()

    _, held = split_by_sample_id(Dataset.from_list(task_rows), 0.2)
    one = pairwise_accuracy(*load_reward_model(trained_reward_model), held)
    two = record.metrics["heldout"]
    assert two["n_pairs"] == one["n_pairs"] == len(held)
    assert two["accuracy"] >= 0.9 and abs(two["accuracy"] - one["accuracy"]) <= 0.03, (one, two)
    assert abs(two["mean_margin"] - one["mean_margin"]) <= 0.1 * abs(one["mean_margin"]), (one, two)


@pytest.mark.slow
def test_two_processes_fine_tune_one_dpo_policy(prefect_harness, juryflow_env, snapshot_in_data_dir,
                                                trained_reward_model, tiny_causal_lm_dir):
    import shutil

    import torch

    from labeling.settings import load_settings
    from models.training.loading import load_causal_lm
    from models.training.registry import Registry

    registry = Registry.from_settings(load_settings())
    rm_version = "20260101T000000000000-2proc0rm"
    shutil.copytree(trained_reward_model, registry.model_dir("reward_model", rm_version))
    registry.register("reward_model", rm_version, snapshot_id=snapshot_in_data_dir, recipe={}, metrics={},
                      parent_model=None)
    recipe = write_recipe(RECIPES / "test" / "dpo.yaml", juryflow_env / "dpo-2proc.yaml",
                          model={"model_name_or_path": tiny_causal_lm_dir},
                          training={"per_device_train_batch_size": 8, "max_steps": 6,
                                    "ddp_find_unused_parameters": False})
    done = _launch_two("flows.finetune_policy", rm_version, "dpo", str(recipe))

    finished = re.findall(r"finetune-policy finished: .*?version (\S+?),", done.stdout)  # unanchored, as above
    assert len(finished) == 2 and len(set(finished)) == 1, done.stdout[-3000:]
    policies = registry.list("policy")
    assert [p.version for p in policies] == finished[:1]
    metrics = policies[0].metrics
    assert metrics["n_processes"] == 2 and metrics["reward_model"] == rm_version
    assert isinstance(metrics["heldout_before"]["preference_accuracy"], float)  # DPO's eval before training
    assert metrics["heldout"]["n_prompts"] > 0  # rank 0's policy report, after training
    # Trained, not just registered: the saved weights moved away from the starting model's.
    policy = load_causal_lm(registry.model_dir("policy", policies[0].version))
    start = load_causal_lm(tiny_causal_lm_dir)
    moved = [n for (n, p), q in zip(policy.named_parameters(), start.parameters(), strict=True)
             if not torch.equal(p, q)]
    assert len(moved) > len(list(start.parameters())) // 2, moved
    assert len(_runs_of("finetune-policy", recipe)) == 1


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    """One rank of the hand-off test: three runs of run_on_ranks over one gloo group."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), ACCELERATE_USE_CPU="true")
    from labeling.errors import UserError
    from models.training.distributed import barrier, lead_training, run_on_ranks

    seen: dict[str, object] = {}

    def train_together() -> None:
        barrier()  # stands for the trainer's collectives: both ranks must reach it

    def lead_ok() -> dict:
        with lead_training({"version": "v1"}):
            train_together()
        return {"version": "v1", "accuracy": 0.97}

    def lead_fails_before_training() -> dict:
        raise UserError("snapshot s1 has 12 preference pairs, fewer than min_snapshot_size=50")

    def lead_fails_after_training() -> dict:
        with lead_training({"version": "v3"}):
            train_together()
        raise ValueError("gate could not load the labeler")

    def follow(job) -> None:
        seen.setdefault("jobs", []).append(job)
        train_together()

    import torch.distributed as dist

    # The last call ends the launch, as the flows' mains do: it closes the group on both ranks.
    for name, lead, close in (("ok", lead_ok, False), ("before", lead_fails_before_training, False),
                              ("after", lead_fails_after_training, True)):
        try:
            seen[name] = run_on_ranks(lead, follow, close=close)
        except Exception as exc:  # noqa: BLE001 - the test records which error each rank ended with
            seen[name] = f"{type(exc).__name__}: {exc}"
    seen["group_left_open"] = dist.is_initialized()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(seen))


def test_ranks_hand_off_the_job_and_rank_zeros_result_or_error(tmp_path):
    """Without Prefect or a trainer: what the followers get when rank 0 succeeds or fails."""
    import multiprocessing

    ctx, port = multiprocessing.get_context("spawn"), free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, str(tmp_path))) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    lead, follower = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert [p.exitcode for p in procs] == [0, 0], (lead, follower)
    assert lead["ok"] == follower["ok"] == {"version": "v1", "accuracy": 0.97}
    assert follower["jobs"] == [{"version": "v1"}, {"version": "v3"}]  # no job when rank 0 failed first
    assert lead["before"].startswith("UserError: snapshot s1 has 12")
    assert follower["before"] == "RankZeroFailed: rank 0 failed: UserError: snapshot s1 has 12 preference pairs, " \
                                 "fewer than min_snapshot_size=50"
    assert lead["after"] == "ValueError: gate could not load the labeler"
    assert follower["after"] == "RankZeroFailed: rank 0 failed: ValueError: gate could not load the labeler"
    assert lead["group_left_open"] is follower["group_left_open"] is False  # closed by the last call, on both


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "fsdp"])
def test_multi_gpu_accelerate_configs_load_and_save_a_whole_model(name):
    """The node configs README shows: accelerate's own loader reads them (it refuses unknown keys), every
    nested key is an `accelerate launch` option, and each saves one full model directory for the registry."""
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    path = RECIPES / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    options = {o for action in launch_command_parser()._actions for o in action.option_strings}
    nested = config.deepspeed_config or config.fsdp_config
    assert nested and all(f"--{key}" in options for key in nested), sorted(nested)
    if name == "fsdp":
        assert nested["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    else:
        assert not ({"gradient_accumulation_steps", "gradient_clipping"} & set(nested))  # "auto": from the recipe
        stage = int(name.removeprefix("deepspeed_zero"))
        assert nested["zero_stage"] == stage
        if stage == 3:  # sharded weights: gathered into one 16-bit model directory on save
            assert nested["zero3_save_16bit_model"] is True
    for recipe in ("reward_model", "dpo"):  # accelerate's mixed precision and the GPU recipes' agree
        training = yaml.safe_load((RECIPES / f"{recipe}.yaml").read_text())["training"]
        assert training["bf16"] is (config.mixed_precision == "bf16")
