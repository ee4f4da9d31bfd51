"""The installed ``juryflow`` console script, run the way a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

JURYFLOW = Path(sys.executable).parent / "juryflow"


def run_juryflow(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([str(JURYFLOW), *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=timeout)


@pytest.mark.parametrize("args", [["models", "--help"], ["models", "list", "--help"],
                                  ["models", "train-reward", "--help"], ["models", "finetune", "--help"]])
def test_models_is_mounted_on_the_installed_command(args: list[str]) -> None:
    assert JURYFLOW.exists(), f"{JURYFLOW} missing: install the project into this venv (uv pip install -e .)"
    result = run_juryflow(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage: juryflow models" in result.stdout


def test_models_list_runs_on_an_empty_registry(tmp_path: Path) -> None:
    env = {"JURYFLOW_CONFIG": str(tmp_path / "juryflow.yaml"), "JURYFLOW__DATA_DIR": str(tmp_path / "data")}
    result = run_juryflow("models", "list", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "no models yet" in result.stdout
