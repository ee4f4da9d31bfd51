"""Reward-model stage: TRL's RewardTrainer (Bradley-Terry loss) on a snapshot's training split."""

from __future__ import annotations

from pathlib import Path

from models.training.config import RewardModelConfig
from models.training.data import tokenize_pairs
from models.training.evaluate import pairwise_accuracy


def load_reward_model(path: str | Path):
    """(model, tokenizer) for a num_labels=1 sequence-classification directory."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.eos_token is None or tokenizer.pad_token is None:
        raise ValueError(
            f"tokenizer at {str(path)!r} has eos_token={tokenizer.eos_token!r}, pad_token={tokenizer.pad_token!r}: "
            "TRL's RewardTrainer needs both; set them in tokenizer_config.json"
        )
    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    return model, tokenizer


def build_reward_trainer(config: RewardModelConfig, train_rows, model, tokenizer):
    from trl import RewardTrainer

    return RewardTrainer(
        model=model,
        args=config,
        train_dataset=tokenize_pairs(train_rows, tokenizer, config.max_length),
        processing_class=tokenizer,
    )


def train_reward_model(config: RewardModelConfig, train_rows, held_out_rows, model_dir: Path) -> dict:
    """Train, save to ``model_dir``, and return held-out accuracy before/after (overall and per source)."""
    if not config.model_name_or_path:
        raise ValueError("reward-model recipe has no model.model_name_or_path: set it to the base model directory")
    model, tokenizer = load_reward_model(config.model_name_or_path)
    before = pairwise_accuracy(model, tokenizer, held_out_rows)
    trainer = build_reward_trainer(config, train_rows, model, tokenizer)
    result = trainer.train()
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    after = pairwise_accuracy(trainer.model, tokenizer, held_out_rows)
    return {
        "heldout_before": before,
        "heldout": after,
        "train_loss": result.training_loss,
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "n_train": len(train_rows),
        "n_heldout": len(held_out_rows),
    }
