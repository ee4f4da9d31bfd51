"""Tiny, randomly initialised models built locally, for tests, the demo and CPU benchmarks.

Nothing is downloaded: the tokenizer is trained here with the ``tokenizers`` library and the
model is made with ``from_config``. Their outputs carry no meaning; they exercise the wiring.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
# A minimal chat template, so TRL and the judge can treat the tiny model as a chat model.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_BASE_CORPUS = [
    "Which response is better? Answer A or B. Verdict: A",
    "Which response is better? Answer A or B. Verdict: B",
    "The answer is A. The answer is B. Response A. Response B.",
    "Please answer in one word. Please answer politely. Please answer with a list.",
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, then bake.",
    "the quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9",
]


def build_tokenizer(out_dir: str | Path, corpus: Iterable[str] = (), vocab_size: int = 1000):
    """Train a byte-level BPE tokenizer on ``corpus`` and save it as a HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeat the verdict letters so " A" and " B" become single tokens, as in real LLM vocabularies.
    texts = list(_BASE_CORPUS) * 20 + list(corpus)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        padding_side="left",
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def _config(tokenizer, hidden_size: int, layers: int, **extra):
    from transformers import LlamaConfig

    heads = max(1, hidden_size // 64)  # head_dim 64: vLLM's CPU attention rejects smaller heads
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden_size // heads,
        max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        **extra,
    )


def build_tiny_causal_lm(
    out_dir: str | Path, corpus: Iterable[str] = (), hidden_size: int = 128, layers: int = 2, seed: int = 0
) -> Path:
    """A tiny Llama causal LM plus tokenizer in ``out_dir``; returns the directory."""
    import torch
    from transformers import LlamaForCausalLM

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(out_dir, corpus)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(_config(tokenizer, hidden_size, layers))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir))
    return out_dir


def build_tiny_reward_model(
    out_dir: str | Path, corpus: Iterable[str] = (), hidden_size: int = 128, layers: int = 2, seed: int = 0
) -> Path:
    """A tiny Llama sequence-classification reward model (``num_labels=1``) plus tokenizer."""
    import torch
    from transformers import LlamaForSequenceClassification

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(out_dir, corpus)
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(_config(tokenizer, hidden_size, layers, num_labels=1))
    model.save_pretrained(str(out_dir))
    return out_dir


# Reserved model ids that name a tiny model instead of a hub checkpoint, so the CPU recipes in
# recipes/test/ run offline as written. Random weights: they exercise the training path, they do
# not make a useful policy. Bump TINY_BUILD when a builder changes, so old caches are not reused.
TINY_CHAT_POLICY = "juryflow-tiny/chat-policy"
TINY_REWARD_MODEL = "juryflow-tiny/reward-model"
TINY_BUILD = "v1"
_TINY_BUILDERS = {TINY_CHAT_POLICY: build_tiny_causal_lm, TINY_REWARD_MODEL: build_tiny_reward_model}


def tiny_models_dir() -> Path:
    """Where reserved tiny models are cached: ``$JURYFLOW_TINY_MODELS_DIR`` or ``~/.cache/juryflow/tiny-models``."""
    import os

    return Path(os.environ.get("JURYFLOW_TINY_MODELS_DIR") or Path.home() / ".cache" / "juryflow" / "tiny-models")


def resolve_tiny_model(name: str | Path) -> Path | None:
    """The cached directory for a reserved ``juryflow-tiny/...`` id (built on first use), else None.

    The build is deterministic (fixed corpus and seed), and it is written to a temporary folder
    and renamed into place, so two processes asking at once both end with the same complete model.
    """
    import shutil
    import tempfile

    builder = _TINY_BUILDERS.get(str(name))
    if builder is None:
        if str(name).startswith("juryflow-tiny/"):
            raise ValueError(f"model {str(name)!r} is not a tiny model juryflow builds: use one of {sorted(_TINY_BUILDERS)}")
        return None
    target = tiny_models_dir() / f"{str(name).split('/', 1)[1]}-{TINY_BUILD}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    builder(work / "model")
    try:
        (work / "model").rename(target)
    except OSError:  # another process finished first: its copy is identical
        if not (target / "config.json").is_file():
            raise
    shutil.rmtree(work, ignore_errors=True)
    return target
