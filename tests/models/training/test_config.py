from pathlib import Path

import pytest

from labeling.errors import UserError
from models.training.config import GRPOStageConfig, RecipeError, RewardModelConfig, load_recipe, read_recipe
from models.training.stages import POLICY_ALGORITHMS, STAGES, get_stage

RECIPES = Path(__file__).resolve().parents[3] / "recipes"
ALL_RECIPES = sorted(RECIPES.glob("*.yaml")) + sorted(RECIPES.glob("test/*.yaml"))


def test_every_recipe_file_is_covered():
    assert len(ALL_RECIPES) >= 8


@pytest.mark.parametrize("path", ALL_RECIPES, ids=lambda p: str(p.relative_to(RECIPES)))
def test_recipe_loads_into_its_stage_config(path, tmp_path):
    stage = read_recipe(path)["__stage__"]
    # Top-level recipes are for GPUs, except the MiniLM cross-encoder labeler's, which runs anywhere.
    gpu = path.parent == RECIPES and path.name != "labeler_cross_encoder.yaml"
    overrides = {"output_dir": str(tmp_path)}
    if gpu:  # GPU recipes ask for bf16, which TrainingArguments refuses on a CPU-only machine
        overrides.update(bf16=False, use_cpu=True)
    config = load_recipe(path, STAGES[stage].config_cls, **overrides)
    if gpu:
        assert read_recipe(path)["bf16"] is True and config.gradient_checkpointing is True
        assert config.model_name_or_path, "GPU recipes name their starting model"
    elif path.parent == RECIPES:
        assert not config.bf16 and config.model_name_or_path == "sentence-transformers/all-MiniLM-L6-v2"
    else:
        assert config.use_cpu and not config.bf16 and not config.gradient_checkpointing
    assert config.report_to == [] or config.report_to == "none" or config.report_to == ["none"]


def test_unknown_keys_are_rejected_by_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  model_name_or_path: x\ntraining:\n  learning_rat: 0.1\n  num_epochz: 2\n")
    with pytest.raises(RecipeError, match=r"\['learning_rat', 'num_epochz'\]"):
        load_recipe(bad, RewardModelConfig, output_dir=str(tmp_path))


def test_unknown_section_and_wrong_stage_are_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  learning_rate: 0.1\n")
    with pytest.raises(RecipeError, match="unknown sections"):
        read_recipe(bad)
    with pytest.raises(RecipeError, match="is for stage 'dpo'"):
        load_recipe(RECIPES / "test" / "dpo.yaml", RewardModelConfig, output_dir=str(tmp_path))


def test_missing_recipe_names_the_path(tmp_path):
    with pytest.raises(RecipeError, match="nope.yaml"):
        read_recipe(tmp_path / "nope.yaml")


def test_grpo_without_kl_penalty_is_refused(tmp_path):
    with pytest.raises(RecipeError, match="beta"):
        GRPOStageConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, beta=0.0)


def test_recipe_without_a_model_is_one_line_naming_file_and_key(tmp_path):
    bad = tmp_path / "nomodel.yaml"
    bad.write_text("stage: dpo\nmodel:\n  model_name_or_path: null\ntraining:\n  use_cpu: true\n")
    with pytest.raises(UserError) as err:
        load_recipe(bad, STAGES["dpo"].config_cls, output_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and "nomodel.yaml" in message and "model.model_name_or_path" in message
    assert "juryflow-tiny/chat-policy" in message


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_gpu_recipe_on_a_cpu_gets_a_one_line_hint(stage, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = RECIPES / f"{stage}.yaml"
    with pytest.raises(UserError) as err:
        load_recipe(path, STAGES[stage].config_cls, output_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert f"use recipes/test/{stage}.yaml or set training.bf16: false" in message
    assert (RECIPES / "test" / f"{stage}.yaml").is_file()  # the hint names a recipe that exists


def test_every_recipe_names_a_stage_in_the_table():
    assert POLICY_ALGORITHMS == ("ppo", "dpo", "rloo", "grpo")
    for name, stage in STAGES.items():
        assert stage.config_cls.STAGE == name and stage.kind == ("reward_model" if name == "reward_model" else "policy")
    assert {read_recipe(p)["__stage__"] for p in ALL_RECIPES} == set(STAGES)
    with pytest.raises(ValueError, match=r"algorithm 'reward_model' is not one of \('ppo', 'dpo', 'rloo', 'grpo'\)"):
        get_stage("reward_model", kind="policy")
