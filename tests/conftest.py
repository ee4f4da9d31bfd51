"""Shared test fixtures: environment hygiene, a session Prefect harness and server, isolated settings."""

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

import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HH_DEV = SHARED_DATA / "hh-rlhf-harmless-dev.jsonl.gz"


# The longest files start first, so that scripts/test.sh's two xdist workers (--dist loadfile
# --no-loadscope-reorder) finish together instead of one running a long file alone at the end.
# Measured on a 2-core machine; a stable sort keeps every file's own test order.
LONGEST_FIRST = (  # seconds per file (junit times), full suite on 2 workers, 2026-12-03, 1,156 s in all
    "tests/test_readme_contract.py",  # 448
    "tests/flows/test_soak.py",  # 174 (the short soak)
    "tests/labeling/test_evaluate.py",  # 164
    "tests/flows/test_concurrent_postgres.py",  # 150
    "tests/models/training/test_multiprocess_training.py",  # 144
    "tests/flows/test_chaos.py",  # 137
    "tests/flows/test_trigger_chain.py",  # 132
    "tests/models/judges/test_vllm_judge.py",  # 121 (97 of them starting the three engines)
    "tests/flows/test_label_batch.py",  # 87
    "tests/flows/test_task_runners.py",  # 61
    "tests/models/labelers/test_embedding.py",  # 59
    "tests/juryflow/test_demo.py",  # 54
    "tests/labeling/labelstudio/test_browser.py",  # 53
    "tests/models/training/test_cross_encoder.py",  # 44
    "tests/labeling/labelstudio/test_roundtrip.py",  # 35
    "tests/juryflow/test_cli_labeler.py",  # 33
    "tests/juryflow/test_cli_help.py",  # 33
    "tests/juryflow/test_cli_errors.py",  # 31
)


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = Path(str(config.rootpath))
    items.sort(key=lambda item: rank.get(Path(str(item.path)).relative_to(root).as_posix(), len(rank)))


@pytest.fixture(scope="session")
def prefect_harness():
    """A real Prefect API (temporary database) for the whole session; start-up is paid once."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """One real `prefect server start` (own PREFECT_HOME, a free port on 127.0.0.1) for every test that
    needs a server process rather than the in-process harness: the deployed trigger chain, the kill -9
    chaos run and the UI check share it instead of paying a server start each.

    Yields {"url", "api_url", "env"}; `env` is os.environ without PREFECT_* plus the server's settings,
    for the test's own subprocesses (set PREFECT_API_URL from `api_url` for clients). Host and port go
    in as settings, not --host/--port: the UI takes its API URL from the settings, so with only the
    flags it would call the default port 4200 and show "Unable to connect".
    """
    import httpx

    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port))
    url = f"http://127.0.0.1:{port}"
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240  # migrating a fresh database takes a while on 2 busy cores
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prefect server on {url} not healthy after 240 s; see {log_path}")
            time.sleep(1)
        yield {"url": url, "api_url": f"{url}/api", "env": env}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a stuck shutdown must not fail a suite that passed
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def ls_venv() -> Path:
    from labeling.labelstudio.server import VENV_ENV_VAR, default_venv

    venv = default_venv()
    os.environ[VENV_ENV_VAR] = str(venv)  # LabelStudioServer installs here when missing
    return venv


@pytest.fixture(scope="session")
def ls_template(ls_venv: Path) -> Path:
    from tests.labeling.labelstudio.conftest import build_template

    return build_template(ls_venv)


@pytest.fixture(scope="session")
def ls_server(ls_template: Path, ls_venv: Path, tmp_path_factory):
    """A real Label Studio server on 127.0.0.1 for the session, from a copy of the migrated template."""
    import shutil

    from labeling.labelstudio.server import LabelStudioServer

    root = tmp_path_factory.mktemp("labelstudio")
    shutil.copytree(ls_template / "labelstudio", root / "labelstudio")
    server = LabelStudioServer(root, port=free_port(), venv=ls_venv).start(timeout_s=120)
    yield server
    server.stop()


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
