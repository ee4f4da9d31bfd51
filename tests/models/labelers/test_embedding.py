from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labeling.ingest import parse_records
from labeling.schemas import Sample
from labeling.settings import IngestSettings
from labeling.synthetic import generate
from models.labelers.embedding import (
    HEAD_FILENAME,
    EmbeddingLabeler,
    accuracy_at_coverage,
    fit_embedding_head,
    load_encoder,
    pair_features,
)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def _swap(s: Sample) -> Sample:
    return s.model_copy(update={"response_a": s.response_b, "response_b": s.response_a})


def _synthetic(n: int) -> list[Sample]:
    from labeling.ingest import RawRecord

    records = [RawRecord(source="synthetic", row=i, data=row) for i, row in enumerate(generate(n, seed=3))]
    samples, rejected = parse_records(records, IngestSettings())
    assert not rejected
    return samples


@pytest.fixture(scope="module")
def synthetic_head(tmp_path_factory, encoder) -> tuple[Path, list[Sample]]:
    samples = _synthetic(80)
    train, held = samples[:60], samples[60:]
    path = fit_embedding_head(
        train, [s.reference_label for s in train], tmp_path_factory.mktemp("head"), encoder=encoder,
        eval_samples=held, eval_labels=[s.reference_label for s in held],
    )
    return path, held


def test_features_are_odd_under_swap(encoder) -> None:
    samples = _synthetic(6)
    x = pair_features(encoder, samples)
    assert x.shape == (6, 386)
    np.testing.assert_allclose(pair_features(encoder, [_swap(s) for s in samples]), -x, atol=1e-6)


def test_swapping_a_and_b_flips_p_a(synthetic_head, encoder) -> None:
    path, held = synthetic_head
    labeler = EmbeddingLabeler(path, encoder=encoder)
    labels = labeler.label(held)
    flipped = labeler.label([_swap(s) for s in held])
    for x, y in zip(labels, flipped):
        assert y.p_a == pytest.approx(1.0 - x.p_a, abs=1e-6)
    # The synthetic set has a learnable signal: the head must find it.
    assert accuracy_at_coverage([x.p_a for x in labels], [s.reference_label for s in held]) >= 0.8


def test_head_file_is_plain_json_with_spec_and_metrics(synthetic_head, encoder) -> None:
    path, _ = synthetic_head
    spec = json.loads(path.read_text())
    assert path.name == HEAD_FILENAME
    assert spec["encoder"].endswith("all-MiniLM-L6-v2") and len(spec["weights"]) == 386
    assert spec["fit"]["n_train"] == 60 and spec["fit"]["n_eval"] == 20
    version = EmbeddingLabeler(path, encoder=encoder).version
    assert version == EmbeddingLabeler(path.parent, encoder=encoder).version  # dir or file, same head


def test_stale_or_missing_head_is_a_clear_error(tmp_path: Path, synthetic_head) -> None:
    with pytest.raises(ValueError, match="juryflow labeler fit"):
        EmbeddingLabeler(tmp_path / "nope.json")
    spec = json.loads(synthetic_head[0].read_text())
    (tmp_path / HEAD_FILENAME).write_text(json.dumps({**spec, "features": ["old"]}))
    with pytest.raises(ValueError, match="refit"):
        EmbeddingLabeler(tmp_path)


def test_fit_rejects_ties_and_tiny_sets(tmp_path: Path) -> None:
    samples = _synthetic(12)
    with pytest.raises(ValueError, match="'A' or 'B'"):
        fit_embedding_head(samples, ["tie"] * 12, tmp_path)
    with pytest.raises(ValueError, match="at least 10"):
        fit_embedding_head(samples[:5], ["A"] * 5, tmp_path)


def test_accuracy_at_coverage() -> None:
    p = [0.9, 0.8, 0.45, 0.55]
    y = ["A", "B", "A", "A"]
    assert accuracy_at_coverage(p, y) == 0.5
    assert accuracy_at_coverage(p, y, 0.25) == 1.0  # only the 0.9
    assert accuracy_at_coverage(p, y, 0.5) == 0.5


@pytest.mark.slow
def test_held_out_accuracy_on_hh_rlhf(hh_dev_samples: list[Sample], tmp_path: Path, encoder) -> None:
    labeled = [s for s in hh_dev_samples if s.reference_label is not None]
    train, held = labeled[:800], labeled[800:1200]
    path = fit_embedding_head(train, [s.reference_label for s in train], tmp_path, encoder=encoder)
    p_a = [x.p_a for x in EmbeddingLabeler(path, encoder=encoder).label(held)]
    truth = [s.reference_label for s in held]
    acc, top50, top30 = (accuracy_at_coverage(p_a, truth, c) for c in (1.0, 0.5, 0.3))
    print(
        f"\nembedding labeler on HH-RLHF harmless, fit {len(train)} / held out {len(held)}: "
        f"accuracy {acc:.3f}, most confident 50% {top50:.3f}, 30% {top30:.3f} (baseline ~0.62 / 0.70 / 0.73)"
    )
    assert acc >= 0.57
