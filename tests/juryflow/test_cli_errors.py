"""A user's mistake is one line naming the thing and the fix, exit 2, before any flow starts; bugs keep tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

JURYFLOW = Path(sys.executable).parent / "juryflow"
REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JURYFLOW__") and k != "JURYFLOW_DEBUG"}
    # A Prefect home whose database must stay absent: no flow may start for a user's mistake.
    return {**env, "JURYFLOW_CONFIG": str(tmp_path / "juryflow.yaml"), "JURYFLOW__DATA_DIR": str(tmp_path / "data"),
            "PREFECT_HOME": str(tmp_path / "prefect"), "COLUMNS": "80", **extra}


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _juryflow(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(JURYFLOW), *args], cwd=tmp_path, env=_env(tmp_path, **env), capture_output=True,
                          text=True, timeout=300)


def _flow_main(tmp_path: Path, module: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"flows.{module}", *args], cwd=REPO, env=_env(tmp_path, **env),
                          capture_output=True, text=True, timeout=300)


def test_a_missing_input_file(tmp_path: Path) -> None:
    _one_line_error(_juryflow(tmp_path, "run", "no-such.jsonl"), "no-such.jsonl", "does not exist", "JSONL")
    assert not (tmp_path / "prefect" / "prefect.db").exists(), "the check ran after a flow started"


def test_a_missing_input_file_for_the_flow_module(tmp_path: Path) -> None:
    _one_line_error(_flow_main(tmp_path, "label_batch", str(tmp_path / "no-such.jsonl")), "no-such.jsonl", "does not exist")
    assert not (tmp_path / "prefect" / "prefect.db").exists()


def test_a_setting_out_of_range(tmp_path: Path) -> None:
    _one_line_error(_juryflow(tmp_path, "status", JURYFLOW__ROUTING__HIGH="1.5"), "routing.high", "JURYFLOW__ROUTING__HIGH")


def test_an_unset_labelstudio_url_for_harvest(tmp_path: Path) -> None:
    _one_line_error(_flow_main(tmp_path, "harvest_reviews"), "labelstudio.url", "juryflow labelstudio up")
    assert not (tmp_path / "prefect" / "prefect.db").exists()


def test_labelstudio_status_with_nothing_configured(tmp_path: Path) -> None:
    _one_line_error(_juryflow(tmp_path, "labelstudio", "status"), "labelstudio.url", "juryflow labelstudio up")


def test_a_missing_labels_file_for_human_import(tmp_path: Path) -> None:
    _one_line_error(_juryflow(tmp_path, "human", "import", "answers.jsonl"), "answers.jsonl", "export-pending")


def test_a_recipe_without_a_model(tmp_path: Path) -> None:
    recipe = tmp_path / "no_model.yaml"
    recipe.write_text("model: {}\ndata:\n  eval_fraction: 0.2\ntraining:\n  num_train_epochs: 1\n")
    _one_line_error(_juryflow(tmp_path, "models", "train-reward", "snap", "--recipe", str(recipe)),
                    "no_model.yaml", "model_name_or_path")
    assert not (tmp_path / "prefect" / "prefect.db").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = _juryflow(tmp_path, "--debug", "run", "no-such.jsonl")
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr


@pytest.mark.parametrize("words", [("status",)])
def test_a_correct_command_still_exits_0(tmp_path: Path, words: tuple[str, ...]) -> None:
    result = _juryflow(tmp_path, *words)
    assert result.returncode == 0, result.stderr
