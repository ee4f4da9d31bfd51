"""Fold fitters for offline evaluation: fit one production labeler on K-1 folds, label the Kth.

``labeling.evaluate.out_of_fold_p_a`` owns the folds and never imports models; the evaluation
task picks a fitter here by labeler kind and passes it in. A fitter is
``fit(train_samples, fold_dir) -> AILabeler`` (used as a context manager, so it is unloaded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from labeling.schemas import Sample
from models.base import AILabeler

FoldFitter = Callable[[Sequence[Sample], Path], AILabeler]


class CachingEncoder:
    """Wraps a sentence encoder so each text is encoded once across all folds' head fits."""

    def __init__(self, encoder: Any) -> None:
        self._encoder = encoder
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            kwargs["convert_to_numpy"] = True
            for t, e in zip(missing, self._encoder.encode(missing, **kwargs), strict=True):
                self._cache[t] = e
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


def embedding_fold_fitter(recipe: str | Path | None = None) -> FoldFitter:
    """MiniLM + logistic head, seconds per fold; the encoder is loaded at the first fold (after the
    inputs were checked) and shared by all of them."""
    from models.labelers.embedding import EmbeddingLabeler, fit_embedding_head, load_encoder

    encoders: list[CachingEncoder] = []  # each text is encoded once across all folds

    def fit(train: Sequence[Sample], fold_dir: Path) -> AILabeler:
        if not encoders:
            encoders.append(CachingEncoder(load_encoder()))
        head_path = fit_embedding_head(train, [s.reference_label for s in train], fold_dir, encoder=encoders[0])
        return EmbeddingLabeler(head_path)

    return fit


def cross_encoder_fold_fitter(recipe: str | Path | None) -> FoldFitter:
    """MiniLM fine-tuned with trl.RewardTrainer from ``recipe``, minutes per fold on a CPU."""
    from models.labelers.reward_model import RewardModelLabeler
    from models.training.reward import fit_reward_labeler

    if recipe is None:
        raise ValueError(
            "the cross-encoder labeler needs a reward-model recipe, e.g. recipes/labeler_cross_encoder.yaml"
        )

    def fit(train: Sequence[Sample], fold_dir: Path) -> AILabeler:
        fit_reward_labeler(recipe, train, [s.reference_label for s in train], fold_dir / "model")
        return RewardModelLabeler(fold_dir / "model", device="auto")

    return fit


FOLD_FITTERS: dict[str, Callable[[str | Path | None], FoldFitter]] = {
    "embedding": embedding_fold_fitter,
    "cross-encoder": cross_encoder_fold_fitter,
}
LABELER_KINDS = tuple(FOLD_FITTERS)


def fold_fitter(labeler: str, recipe: str | Path | None = None) -> FoldFitter:
    """The fitter for labeler kind ``labeler``; the error lists the kinds."""
    if labeler not in FOLD_FITTERS:
        raise ValueError(f"labeler {labeler!r} is not one of {LABELER_KINDS}")
    return FOLD_FITTERS[labeler](recipe)
