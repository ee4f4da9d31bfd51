"""Online RL with TRL's trainers: RLOO and GRPO, scored by our reward model.

Both sample several completions per prompt and use the group as the baseline, so they need no
value head. The reward function is our registered reward-model directory: TRL loads a
sequence-classification model from a path given as ``reward_funcs``. Our own PPO is in ppo.py.
"""

from __future__ import annotations

from pathlib import Path

from models.training.config import GRPOStageConfig, RLOOStageConfig
from models.training.data import chat_prompts
from models.training.dpo import load_chat_tokenizer, lora_config


def train_online(config: RLOOStageConfig | GRPOStageConfig, train_rows, reward_model_dir: Path, model_dir: Path) -> dict:
    from trl import GRPOTrainer, RLOOTrainer

    if not config.model_name_or_path:
        raise ValueError("policy recipe has no model.model_name_or_path: set it to the SFT chat model directory")
    trainer_cls = GRPOTrainer if isinstance(config, GRPOStageConfig) else RLOOTrainer
    tokenizer = load_chat_tokenizer(config.model_name_or_path)
    trainer = trainer_cls(
        model=config.model_name_or_path,
        reward_funcs=str(reward_model_dir),
        args=config,
        train_dataset=chat_prompts(train_rows),
        processing_class=tokenizer,
        peft_config=lora_config(config),
    )
    result = trainer.train()
    if config.use_peft:
        trainer.model = trainer.model.merge_and_unload()
    trainer.model.save_pretrained(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    logged = [h for h in trainer.state.log_history if "reward" in h]
    return {
        "train_loss": result.training_loss,
        "reward_first": logged[0]["reward"] if logged else None,
        "reward_last": logged[-1]["reward"] if logged else None,
        "kl_last": logged[-1].get("kl") if logged else None,
    }
