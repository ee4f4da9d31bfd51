"""A trained reward model as the AI labeler: ``p_a = sigmoid(r(prompt, A) - r(prompt, B))``.

This is the Bradley-Terry preference model a reward model is trained under (Ouyang et al. 2022,
eq. 1), so the labeler and the training objective read the reward the same way. Any Hugging Face
sequence-classification model with ``num_labels=1`` works. Training text must be formatted with
``format_pair_text`` too, or the model is scored on text shaped unlike what it learned from.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labeling.schemas import AILabel, ChatMessage, Sample, render_prompt
from models.base import AILabeler
from models.torch_runtime import free_accelerator_memory, resolve_device

# Weight files above this size are fingerprinted by their first bytes and size only, so that a
# 14 GB model does not take a minute to get a version string. Trained checkpoints differ early.
_FULL_HASH_LIMIT = 2 * 1024**3
_PARTIAL_HASH_BYTES = 64 * 1024**2


def format_pair_text(tokenizer: Any, prompt: str | Sequence[ChatMessage], response: str) -> str:
    """One (prompt, response) as the text the reward model scores.

    With a chat template: the prompt's messages (a plain-text prompt is one user message) and the
    response as the assistant turn. Without one: ``"prompt\\n\\nresponse"``.
    """
    if getattr(tokenizer, "chat_template", None):
        if isinstance(prompt, str):
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [{"role": m.role, "content": m.content} for m in prompt]
        messages.append({"role": "assistant", "content": response})
        return tokenizer.apply_chat_template(messages, tokenize=False)
    text = prompt if isinstance(prompt, str) else render_prompt(list(prompt))
    return f"{text}\n\n{response}"


def weights_fingerprint(model_dir: str | Path) -> str:
    """A short hash of a model directory's config and weight files (its identity as a labeler)."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    files = sorted(model_dir.glob("config.json")) + sorted(model_dir.glob("*.safetensors"))
    files += sorted(model_dir.glob("*.bin"))
    if not files:
        raise ValueError(f"reward model directory {str(model_dir)!r} has no config.json or weights: train one first")
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as fh:
            remaining = size if size <= _FULL_HASH_LIMIT else _PARTIAL_HASH_BYTES
            while remaining > 0:
                block = fh.read(min(remaining, 1024**2))
                if not block:
                    break
                digest.update(block)
                remaining -= len(block)
    return digest.hexdigest()[:12]


class RewardModelLabeler(AILabeler):
    name = "reward_model"

    def __init__(self, model_dir: str | Path, batch_size: int = 16, device: str = "auto") -> None:
        if batch_size < 1:
            raise ValueError(f"RewardModelLabeler batch_size={batch_size}: must be >= 1")
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.device = device
        self._version: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = f"{self.model_dir.name}-{weights_fingerprint(self.model_dir)}"
        return self._version

    def load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer


        self.device = resolve_device(self.device)
        tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))  # padded and cut by score_texts
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        model = AutoModelForSequenceClassification.from_pretrained(str(self.model_dir), dtype=dtype)
        if model.config.num_labels != 1:
            raise ValueError(
                f"reward model {str(self.model_dir)!r} has num_labels={model.config.num_labels}: "
                "a reward model needs num_labels=1 (one scalar reward per text)"
            )
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self._model, self._tokenizer = model.to(self.device).eval(), tokenizer

    def unload(self) -> None:
        if self._model is None:
            return
        self._model = self._tokenizer = None
        free_accelerator_memory()

    def rewards(self, texts: Sequence[str]) -> list[float]:
        """The scalar reward of each formatted text."""
        self.load()
        # batch_size counts samples; each has an A and a B text.
        return score_texts(self._model, self._tokenizer, texts, 2 * self.batch_size).tolist()

    def pair_text(self, prompt: str | Sequence[ChatMessage], response: str) -> str:
        """The text ``label`` scores for one (prompt, response); the reward server scores the same."""
        self.load()
        return format_pair_text(self._tokenizer, prompt, response)

    def label(self, samples: Sequence[Sample]) -> list[AILabel]:
        self.load()
        texts = []
        for s in samples:
            texts.append(format_pair_text(self._tokenizer, s.prompt, s.response_a))
            texts.append(format_pair_text(self._tokenizer, s.prompt, s.response_b))
        r = self.rewards(texts)
        return [
            AILabel(
                sample_id=s.sample_id,
                p_a=_sigmoid(r[2 * i] - r[2 * i + 1]),
                labeler_name=self.name,
                labeler_version=self.version,
            )
            for i, s in enumerate(samples)
        ]


def score_texts(model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int) -> Any:
    """r(text) for each formatted text, as a float tensor (N,), on the CPU.

    The one scoring path for labeling and for held-out evaluation during training, so both read
    a text the same way: right padding (position ids stay 0..T-1 without passing them), left
    truncation (the response, at the end, is what is scored) at the trained length.
    """
    import torch

    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "left"
    max_length = scoring_max_length(model, tokenizer)
    device = next(model.parameters()).device
    scores = []
    with torch.no_grad():  # not inference_mode: PPO mixes these scores into tensors it trains on
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True,
                            truncation=True, max_length=max_length).to(device)  # fmt: skip
            scores.append(model(**enc).logits[:, 0].float().cpu())  # (B,)
    return torch.cat(scores) if scores else torch.empty(0)


def scoring_max_length(model: Any, tokenizer: Any) -> int:
    """Longest text the model scores: its position limit, or the length it was trained at
    (``train_reward_model`` saves that as the tokenizer's ``model_max_length``)."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min(int(x) for x in limits if x and x < 10**8)


def _sigmoid(x: float) -> float:
    # Written to avoid overflow in exp for large |x|.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
