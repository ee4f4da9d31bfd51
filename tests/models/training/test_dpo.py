import math

import pytest
from datasets import Dataset

from models.training.config import DPOStageConfig, load_recipe
from models.training.data import split_by_sample_id
from models.training.dpo import train_dpo
from tests.models.training.conftest import RECIPES


def _train(recipe, sft_policy, task_rows, tmp_path):
    config = load_recipe(RECIPES / "test" / recipe, DPOStageConfig, output_dir=str(tmp_path / "trainer"),
                         model_name_or_path=str(sft_policy))
    train, held = split_by_sample_id(Dataset.from_list(task_rows), config.eval_fraction)
    return train_dpo(config, train, held, tmp_path / "policy")


@pytest.mark.slow
def test_dpo_raises_preference_accuracy_and_margin(sft_policy, task_rows, tmp_path):
    metrics = _train("dpo.yaml", sft_policy, task_rows, tmp_path)
    before, after = metrics["heldout_before"], metrics["heldout"]
    assert after["preference_accuracy"] >= before["preference_accuracy"] + 0.2, metrics
    assert after["reward_margin"] > before["reward_margin"] + 0.1, metrics
    assert (tmp_path / "policy" / "config.json").is_file()


@pytest.mark.slow
def test_dpo_with_lora_saves_a_merged_plain_model(sft_policy, task_rows, tmp_path):
    """LoRA path: trains adapters, merges them, saves a plain model directory (no adapter files)."""
    metrics = _train("dpo_lora.yaml", sft_policy, task_rows, tmp_path)
    assert math.isfinite(metrics["heldout"]["reward_margin"]) and math.isfinite(metrics["train_loss"])
    assert (tmp_path / "policy" / "config.json").is_file()
    assert not (tmp_path / "policy" / "adapter_config.json").exists()
