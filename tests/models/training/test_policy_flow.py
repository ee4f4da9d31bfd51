"""finetune-policy end to end on tiny models: PPO against a promoted reward model, with its report."""

import pytest

from models.training.registry import Registry
from tests.models.training.conftest import RECIPES, write_recipe


@pytest.mark.slow
def test_finetune_policy_ppo_reports_before_after(prefect_harness, snapshot_in_data_dir, juryflow_env,
                                                  trained_reward_model, sft_policy):
    import shutil

    from flows.finetune_policy import finetune_policy
    from labeling.settings import load_settings

    registry = Registry.from_settings(load_settings())
    rm_version = "rm-test"
    shutil.copytree(trained_reward_model, registry.model_dir("reward_model", rm_version))
    registry.register("reward_model", rm_version, snapshot_id=snapshot_in_data_dir, recipe={}, metrics={},
                      parent_model=None)
    recipe = write_recipe(RECIPES / "test" / "ppo.yaml", juryflow_env / "ppo.yaml",
                          model={"model_name_or_path": sft_policy}, training={"num_iterations": 4})
    report = finetune_policy(rm_version, "ppo", str(recipe))
    for key in ("rm_score_before", "rm_score_after", "kl_to_reference", "win_rate_vs_reference"):
        assert isinstance(report[key], float)
    assert 0.0 <= report["win_rate_vs_reference"] <= 1.0
    policy = registry.get("policy", report["version"])
    assert policy.metrics["algorithm"] == "ppo" and policy.metrics["reward_model"] == rm_version
    assert policy.metrics["heldout"]["n_prompts"] > 0 and policy.parent_model == str(sft_policy)


def test_unknown_algorithm_is_refused(prefect_harness, juryflow_env):
    from flows.finetune_policy import finetune_policy

    with pytest.raises(ValueError, match="algorithm 'sac' is not one of"):
        finetune_policy("v1", "sac")


BYTECODE_OPNAMES = ("LOAD_GLOBAL", "LOAD_FAST", "RETURN_VALUE", "RESUME", "CALL_FUNCTION", "PRECALL")


@pytest.mark.slow
def test_finetune_dpo_run_log_has_progress_and_one_summary_not_bytecode(prefect_harness, snapshot_in_data_dir,
                                                                       juryflow_env, trained_reward_model, sft_policy):
    """Even under log_prints=True (as flows had it), what dill and transformers print stays out of the run log."""
    import shutil

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.finetune_policy import finetune_policy
    from labeling.settings import load_settings

    registry = Registry.from_settings(load_settings())
    shutil.copytree(trained_reward_model, registry.model_dir("reward_model", "rm-logs"))
    registry.register("reward_model", "rm-logs", snapshot_id=snapshot_in_data_dir, recipe={}, metrics={},
                      parent_model=None)
    recipe = write_recipe(RECIPES / "test" / "dpo.yaml", juryflow_env / "dpo.yaml",
                          model={"model_name_or_path": sft_policy}, training={"num_train_epochs": 1, "logging_steps": 5})
    state = finetune_policy.with_options(log_prints=True)("rm-logs", "dpo", str(recipe), return_state=True)
    assert state.is_completed()
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    messages = [log.message for log in logs]
    assert not [m for m in messages if any(op in m for op in BYTECODE_OPNAMES)], messages[:20]
    assert any(m.startswith("step ") and "loss=" in m for m in messages), messages
    assert any(m.startswith("dpo ") and " trained: train_loss=" in m for m in messages), messages
    summaries = [m for m in messages if m.startswith("finetune-policy summary: dpo policy ")]
    assert len(summaries) == 1 and "win_rate_vs_reference=" in summaries[0], messages


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_finetune_online_as_written_with_the_cross_encoder(algorithm, prefect_harness, snapshot_in_data_dir,
                                                           juryflow_env, cross_encoder_reward_model, monkeypatch):
    """The shipped CPU recipe (juryflow-tiny/chat-policy) against the reward model without a chat template."""
    import shutil

    from flows.finetune_policy import finetune_policy
    from labeling.settings import load_settings

    monkeypatch.setenv("JURYFLOW_TINY_MODELS_DIR", str(juryflow_env / "tiny"))
    registry = Registry.from_settings(load_settings())
    shutil.copytree(cross_encoder_reward_model, registry.model_dir("reward_model", "rm-xenc"))
    registry.register("reward_model", "rm-xenc", snapshot_id=snapshot_in_data_dir, recipe={}, metrics={},
                      parent_model=None)
    report = finetune_policy("rm-xenc", algorithm, "recipes/test/" + algorithm + ".yaml")
    assert 0.0 <= report["win_rate_vs_reference"] <= 1.0 and report["n_prompts"] > 0
    policy = registry.get("policy", report["version"])
    assert policy.parent_model == "juryflow-tiny/chat-policy" and policy.metrics["algorithm"] == algorithm
