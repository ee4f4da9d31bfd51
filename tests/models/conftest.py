"""Session fixtures for model tests: tiny local models built once (nothing is downloaded).

Other test packages reuse ``tiny_causal_lm_dir`` and ``tiny_reward_model_dir``.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import pytest

from labeling.schemas import Sample


@pytest.fixture(scope="session")
def tiny_causal_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))


@pytest.fixture(scope="session")
def tiny_reward_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.tiny import build_tiny_reward_model

    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny-reward-model"))


@pytest.fixture(scope="session")
def hh_dev_samples(hh_dev_path: Path) -> list[Sample]:
    """The shared HH-RLHF harmless rows as samples (A/B shuffled by id; reference labels kept)."""
    from labeling.ingest import load_records, parse_records
    from labeling.settings import IngestSettings

    samples, _rejected = parse_records(islice(load_records(hh_dev_path), 1200), IngestSettings())
    return samples
