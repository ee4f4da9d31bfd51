"""Tiny models for the synthetic preference task, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.training.synthetic import corpus, preference_rows, write_snapshot

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def sft_warm_start(lm_dir: Path, out_dir: Path, rows: list[dict], epochs: int = 3) -> Path:
    """A few epochs of SFT on both replies, so the random tiny policy speaks the task's language.

    Real policies start from a chat SFT model too; from random weights PPO only sees gibberish.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    messages = [[{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": reply}]
                for r in rows for reply in (r["chosen"], r["rejected"])]
    args = SFTConfig(output_dir=str(out_dir) + "-trainer", use_cpu=True, bf16=False, report_to="none",
                     gradient_checkpointing=False, learning_rate=2e-3, num_train_epochs=epochs,
                     per_device_train_batch_size=32, save_strategy="no", disable_tqdm=True, max_length=64)
    trainer = SFTTrainer(model=str(lm_dir), args=args, train_dataset=Dataset.from_dict({"messages": messages}))
    trainer.train()
    trainer.save_model(str(out_dir))
    return out_dir


@pytest.fixture(scope="session")
def task_rows() -> list[dict]:
    return preference_rows(400, seed=0)


@pytest.fixture(scope="session")
def base_reward_model(tmp_path_factory) -> Path:
    """An untrained tiny reward model whose tokenizer has every task word as a token."""
    from models.tiny import build_tiny_reward_model

    return build_tiny_reward_model(tmp_path_factory.mktemp("base-rm"), corpus(), hidden_size=64, layers=2)


@pytest.fixture(scope="session")
def sft_policy(tmp_path_factory, task_rows) -> Path:
    from models.tiny import build_tiny_causal_lm

    work = tmp_path_factory.mktemp("policy")
    build_tiny_causal_lm(work / "random", corpus(), hidden_size=64, layers=2)
    return sft_warm_start(work / "random", work / "sft", task_rows)


@pytest.fixture(scope="session")
def trained_reward_model(tmp_path_factory, base_reward_model, task_rows) -> Path:
    """The reward model trained once on the task (the PPO and online tests score with it)."""
    from datasets import Dataset

    from models.training.config import RewardModelConfig, load_recipe
    from models.training.data import split_by_sample_id
    from models.training.reward import train_reward_model

    work = tmp_path_factory.mktemp("trained-rm")
    config = load_recipe(RECIPES / "test" / "reward_model.yaml", RewardModelConfig, output_dir=str(work / "trainer"),
                         model_name_or_path=str(base_reward_model))
    train, held_out = split_by_sample_id(Dataset.from_list(task_rows), config.eval_fraction)
    metrics = train_reward_model(config, train, held_out, work / "model")
    assert metrics["heldout"]["accuracy"] >= 0.9, metrics
    return work / "model"


@pytest.fixture(scope="session")
def cross_encoder_reward_model(tmp_path_factory):
    """The MiniLM cross-encoder as a reward-model directory: no chat template, like the one that trains offline."""
    from models.labelers.embedding import ENCODER_NAME
    from models.training.loading import load_reward_model

    out = tmp_path_factory.mktemp("xenc-rm")
    model, tokenizer = load_reward_model(ENCODER_NAME)
    assert not tokenizer.chat_template
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def write_recipe(src: Path, dst: Path, **sections: dict) -> Path:
    """A copy of a recipe with keys replaced per section (tests point it at tiny local models)."""
    import yaml

    raw = yaml.safe_load(src.read_text())
    for section, values in sections.items():
        raw[section].update({k: str(v) if isinstance(v, Path) else v for k, v in values.items()})
    dst.write_text(yaml.safe_dump(raw))
    return dst


@pytest.fixture
def snapshot_in_data_dir(juryflow_env, task_rows):
    """Writes the task snapshot under <data_dir>/snapshots and returns its id."""
    return write_snapshot(juryflow_env / "data" / "snapshots", task_rows)
