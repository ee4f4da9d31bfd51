"""Shared test fixtures: environment hygiene, a session Prefect harness, isolated settings."""

from __future__ import annotations

import os

# Set before torch/prefect import anywhere: 2 threads made tiny-model training 25x slower on
# these 2-core machines, and the ephemeral Prefect API needs time to start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HH_DEV = SHARED_DATA / "hh-rlhf-harmless-dev.jsonl.gz"


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary database) for the whole session; start-up is paid once."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No JURYFLOW__ variables and no juryflow.yaml from the caller's environment."""
    for key in list(os.environ):
        if key.startswith("JURYFLOW__"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JURYFLOW_CONFIG", str(tmp_path / "juryflow.yaml"))
    return monkeypatch


@pytest.fixture
def juryflow_env(tmp_path, clean_env):
    """Isolated settings: a fresh data dir and store per test."""
    from tasks import resources

    clean_env.setenv("JURYFLOW__DATA_DIR", str(tmp_path / "data"))
    resources.release_models()
    yield tmp_path
    resources.release_models()


@pytest.fixture(scope="session")
def hh_dev_path() -> Path:
    if not HH_DEV.exists():
        pytest.skip(f"shared HH-RLHF data not found at {HH_DEV}; it sits in ../shared/data beside the repo")
    return HH_DEV
