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
