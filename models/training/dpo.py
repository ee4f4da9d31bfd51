"""DPO stage: trl.DPOTrainer on a snapshot's preference pairs, optionally with LoRA adapters.

The policy starts from ``model_name_or_path``, which must be a chat (SFT) model: rows are
conversations and DPOTrainer renders them with the model's chat template. The frozen reference
is the same directory loaded again (TRL reloads it by path, so an in-memory-only model would
fail); with LoRA there is no second copy: the reference is the base with adapters disabled.
"""

from __future__ import annotations

from pathlib import Path

from models.training.config import DPOStageConfig
from models.training.data import dpo_rows, with_p_wrong
from models.training.loading import load_chat_tokenizer, lora_config, resolve_base_model


def train_dpo(config: DPOStageConfig, train_rows, held_out_rows, model_dir: Path, callbacks=None) -> dict:
    """Train; return held-out preference accuracy and implicit reward margin before and after."""
    from trl import DPOTrainer

    from models.training.noise_aware import NoiseAwareDPOTrainer

    if not config.model_name_or_path:
        raise ValueError("DPO recipe has no model.model_name_or_path: set it to the SFT chat model directory")
    trainer_cls = DPOTrainer
    if config.noise_aware:  # conservative DPO with each pair's own p_wrong (issue 16)
        trainer_cls = NoiseAwareDPOTrainer
        train_rows, held_out_rows = with_p_wrong(train_rows), with_p_wrong(held_out_rows)
    tokenizer = load_chat_tokenizer(config.model_name_or_path)
    trainer = trainer_cls(
        model=resolve_base_model(config.model_name_or_path),  # a path, so TRL can load the reference from it too
        args=config,
        train_dataset=dpo_rows(train_rows),
        eval_dataset=dpo_rows(held_out_rows),
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
    )
    before = trainer.evaluate()
    result = trainer.train()
    after = trainer.evaluate()
    if config.use_peft:
        trainer.model = trainer.model.merge_and_unload()  # a plain model directory for labelers and serving
    # Model and tokenizer. Every rank calls it under `accelerate launch` (FSDP and ZeRO-3 gather the
    # sharded weights inside); only rank 0 writes. evaluate() above is collective too: all ranks run it.
    trainer.save_model(str(model_dir))

    def pick(metrics: dict) -> dict:
        return {
            "preference_accuracy": metrics.get("eval_rewards/accuracies"),
            "reward_margin": metrics.get("eval_rewards/margins"),
            "loss": metrics.get("eval_loss"),
        }

    return {
        "heldout_before": pick(before),
        "heldout": pick(after),
        "train_loss": result.training_loss,
        "n_train": len(train_rows),
        "n_heldout": len(held_out_rows),
    }
