"""models/labelers/folds.py: the fold fitters the evaluation task passes to labeling.evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from models.labelers.folds import LABELER_KINDS, CachingEncoder, fold_fitter


class CountingEncoder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, **kwargs):
        self.seen += list(texts)
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)


def test_caching_encoder_encodes_each_text_once_and_keeps_order() -> None:
    inner = CountingEncoder()
    encoder = CachingEncoder(inner)
    first = encoder.encode(["aa", "b", "aa"])
    second = encoder.encode(["b", "ccc"])
    assert inner.seen == ["aa", "b", "ccc"]
    assert first.tolist() == [[2, 2], [1, 0], [2, 2]] and second.tolist() == [[1, 0], [3, 0]]


def test_fold_fitter_names_the_kinds_and_needs_a_recipe_for_the_cross_encoder() -> None:
    assert LABELER_KINDS == ("embedding", "cross-encoder")
    with pytest.raises(ValueError, match=r"labeler 'bm25' is not one of \('embedding', 'cross-encoder'\)"):
        fold_fitter("bm25")
    with pytest.raises(ValueError, match="recipes/labeler_cross_encoder.yaml"):
        fold_fitter("cross-encoder", None)
    assert callable(fold_fitter("embedding"))  # cheap: the encoder loads at the first fold, not here
