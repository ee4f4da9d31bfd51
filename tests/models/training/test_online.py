"""RLOO and GRPO (TRL) behind the same flow parameter, scored by our reward model directory."""

import math

import pytest
from datasets import Dataset

from models.training.config import GRPOStageConfig, RLOOStageConfig, load_recipe
from models.training.data import split_by_sample_id
from models.training.online import train_online
from tests.models.training.conftest import RECIPES


@pytest.mark.slow
@pytest.mark.parametrize("recipe, config_cls", [("grpo.yaml", GRPOStageConfig), ("rloo.yaml", RLOOStageConfig)])
def test_online_trainer_runs_with_our_reward_model(recipe, config_cls, sft_policy, trained_reward_model, task_rows, tmp_path):
    config = load_recipe(RECIPES / "test" / recipe, config_cls, output_dir=str(tmp_path / "trainer"),
                         model_name_or_path=str(sft_policy))
    assert config.beta > 0
    train, _ = split_by_sample_id(Dataset.from_list(task_rows), config.eval_fraction)
    metrics = train_online(config, train, trained_reward_model, tmp_path / "policy")
    assert math.isfinite(metrics["reward_first"]) and math.isfinite(metrics["reward_last"])
    assert (tmp_path / "policy" / "config.json").is_file()


def test_reward_function_scores_pairs_as_the_reward_model_was_trained(cross_encoder_reward_model):
    from models.labelers.reward_model import format_pair_text, score_texts
    from models.training.loading import load_reward_model
    from models.training.online import reward_function

    reward = reward_function(cross_encoder_reward_model, "cpu")
    prompts = [[{"role": "user", "content": "How do I bake bread?"}]] * 2
    completions = [[{"role": "assistant", "content": "Mix flour and bake."}], [{"role": "assistant", "content": "No."}]]
    got = reward(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None)
    model, tokenizer = load_reward_model(cross_encoder_reward_model)
    texts = [format_pair_text(tokenizer, "How do I bake bread?", r) for r in ("Mix flour and bake.", "No.")]
    assert texts[0] == "How do I bake bread?\n\nMix flour and bake."  # plain text: no chat template
    assert got == pytest.approx(score_texts(model, tokenizer, texts, 8).tolist(), abs=1e-5)
