"""Online RL with TRL's trainers: RLOO and GRPO, scored by our reward model.

Both sample several completions per prompt and use the group as the baseline, so they need no
value head. The reward is a plain function over our registered reward-model directory, not the
directory itself: given a path, TRL renders prompt + completion with the *reward model's* chat
template, and the MiniLM cross-encoder (the reward model that trains offline) has none. Our
function formats each pair exactly as the reward model was trained and as the labeler reads it
(``format_pair_text``: the chat template when there is one, else ``prompt\\n\\nresponse``).
Our own PPO is in ppo.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from labeling.schemas import ChatMessage
from models.training.config import GRPOStageConfig, RLOOStageConfig
from models.training.data import chat_prompts
from models.training.loading import load_chat_tokenizer, load_reward_model, lora_config, resolve_base_model


def as_pair_prompt(messages: str | Sequence[dict]) -> str | list[ChatMessage]:
    """A TRL prompt as our pair text takes it: one user turn is the plain prompt text the reward
    model was trained on (snapshot prompts are plain text); longer conversations stay messages."""
    if isinstance(messages, str):
        return messages
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return [ChatMessage(role=m["role"], content=m["content"]) for m in messages]


def completion_text(completion: str | Sequence[dict]) -> str:
    """A TRL completion (text, or the assistant messages of a conversational one) as text."""
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m["role"] == "assistant")


def reward_function(reward_model_dir: str | Path, device: str, batch_size: int = 32) -> Callable[..., list[float]]:
    """TRL's reward-function signature over our reward model: r(prompt, completion) per pair."""
    from models.labelers.reward_model import format_pair_text, score_texts

    model, tokenizer = load_reward_model(reward_model_dir)
    model.to(device).eval().requires_grad_(False)

    def reward_model(prompts: list, completions: list, **_: object) -> list[float]:
        texts = [format_pair_text(tokenizer, as_pair_prompt(p), completion_text(c))
                 for p, c in zip(prompts, completions, strict=True)]
        return score_texts(model, tokenizer, texts, batch_size).tolist()

    return reward_model


def train_online(config: RLOOStageConfig | GRPOStageConfig, train_rows, reward_model_dir: Path, model_dir: Path,
                 callbacks=None) -> dict:
    from trl import GRPOTrainer, RLOOTrainer

    if not config.model_name_or_path:
        raise ValueError("policy recipe has no model.model_name_or_path: set it to the SFT chat model directory")
    trainer_cls = GRPOTrainer if isinstance(config, GRPOStageConfig) else RLOOTrainer
    tokenizer = load_chat_tokenizer(config.model_name_or_path)
    trainer = trainer_cls(
        model=resolve_base_model(config.model_name_or_path),
        reward_funcs=reward_function(reward_model_dir, str(config.device)),
        args=config,
        train_dataset=chat_prompts(train_rows),
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=callbacks,
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
