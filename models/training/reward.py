"""Reward-model stage: TRL's RewardTrainer (Bradley-Terry loss) on a snapshot's training split."""

from __future__ import annotations

from pathlib import Path

from models.training.config import RewardModelConfig
from models.training.data import tokenize_pairs, with_p_wrong
from models.training.distributed import is_main_process
from models.training.evaluate import pairwise_accuracy
from models.training.loading import load_reward_model


def build_reward_trainer(config: RewardModelConfig, train_rows, model, tokenizer, callbacks=None):
    from trl import RewardTrainer

    from models.training.noise_aware import NoiseAwareRewardTrainer

    if config.noise_aware:  # soft targets 1 - p_wrong per pair (issue 16)
        trainer_cls, train_rows = NoiseAwareRewardTrainer, with_p_wrong(train_rows)
    else:
        trainer_cls = RewardTrainer
    return trainer_cls(
        model=model,
        args=config,
        train_dataset=tokenize_pairs(train_rows, tokenizer, config.max_length),
        processing_class=tokenizer,
        callbacks=callbacks,
    )


def train_reward_model(config: RewardModelConfig, train_rows, held_out_rows, model_dir: Path, callbacks=None) -> dict:
    """Train, save to ``model_dir``, and return held-out accuracy before/after (overall and per
    source); ``held_out_rows=None`` skips the measurement (a caller that scores elsewhere).
    ``callbacks`` are transformers TrainerCallbacks (e.g. progress lines for the run log).

    Under ``accelerate launch`` every rank calls this; only rank 0 writes the tokenizer and measures
    (the others return ``None`` for both accuracies), and every rank saves, because FSDP and ZeRO-3
    gather the sharded weights inside ``save_model``.
    """
    if not config.model_name_or_path:
        raise ValueError("reward-model recipe has no model.model_name_or_path: set it to the base model directory")
    model, tokenizer = load_reward_model(config.model_name_or_path)
    measure = held_out_rows is not None and is_main_process()
    before = pairwise_accuracy(model, tokenizer, held_out_rows) if measure else None
    trainer = build_reward_trainer(config, train_rows, model, tokenizer, callbacks)
    result = trainer.train()
    trainer.save_model(str(model_dir))  # rank 0 writes; every rank must call it (see the docstring)
    after = None
    if is_main_process():
        if config.max_length is not None:
            # The labeler truncates to the tokenizer's model_max_length: score texts as they were trained.
            tokenizer.model_max_length = config.max_length
        tokenizer.save_pretrained(str(model_dir))
        if measure:
            # Scored from the saved directory, as the gate and the next labeler read it; trainer.model
            # may hold only this rank's shard under FSDP or ZeRO-3.
            saved, saved_tokenizer = load_reward_model(model_dir)
            after = pairwise_accuracy(saved.to(trainer.args.device), saved_tokenizer, held_out_rows)
    return {
        "heldout_before": before,
        "heldout": after,
        "train_loss": result.training_loss,
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "n_train": len(train_rows),
        "n_heldout": 0 if held_out_rows is None else len(held_out_rows),
    }


def preference_rows(samples, labels):
    """A datasets.Dataset of (prompt, chosen, rejected) rows, shaped like a snapshot's, from
    samples and the side each human label prefers; ties are refused by sample id."""
    from datasets import Dataset

    rows: dict[str, list] = {"prompt": [], "chosen": [], "rejected": [], "sample_id": [], "source": []}
    for sample, label in zip(samples, labels, strict=True):
        if label not in ("A", "B"):
            raise ValueError(
                f"sample {sample.sample_id!r}: label {label!r} must be 'A' or 'B' (drop ties before training)"
            )
        chosen, rejected = (
            (sample.response_a, sample.response_b) if label == "A" else (sample.response_b, sample.response_a)
        )
        rows["prompt"].append(sample.prompt_text)
        rows["chosen"].append(chosen)
        rows["rejected"].append(rejected)
        rows["sample_id"].append(sample.sample_id)
        rows["source"].append("human")
    return Dataset.from_dict(rows)


def fit_reward_labeler(recipe: str | Path, samples, labels, out_dir: Path) -> dict:
    """Train a reward model on labeled pairs (outside any snapshot) for RewardModelLabeler.

    This is the training stage's own path, ``train_reward_model``, so a labeler fitted from a file
    and one trained by the train-reward-model flow are the same kind of model. Nothing is measured
    here: callers score the labeler on their own held-out pairs.
    """
    from models.training.config import RewardModelConfig, load_recipe

    config = load_recipe(recipe, RewardModelConfig, output_dir=str(Path(out_dir) / "trainer"))
    if len(samples) < config.min_snapshot_size:
        raise ValueError(
            f"{len(samples)} labeled pairs, fewer than the recipe's min_snapshot_size={config.min_snapshot_size}: "
            "label more pairs, or lower data.min_snapshot_size in the recipe"
        )
    return train_reward_model(config, preference_rows(samples, labels), None, Path(out_dir))
