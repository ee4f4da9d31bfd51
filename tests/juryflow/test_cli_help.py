"""``--help`` answers on every command of the real app and on every ``python -m flows.<name>``, without running anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from juryflow.cli import app

REPO = Path(__file__).resolve().parents[2]
FLOW_MODULES = sorted(p.stem for p in (REPO / "flows").glob("*.py") if not p.stem.startswith("_")
                      and p.stem not in ("summaries",))


def _command_paths(command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if getattr(command, "commands", None):  # a group (typer vendors its own click)
        for name, sub in command.commands.items():
            paths += _command_paths(sub, (*prefix, name))
    return paths


COMMAND_PATHS = _command_paths(typer.main.get_command(app))


def test_the_tree_has_the_documented_commands() -> None:
    names = {" ".join(p) for p in COMMAND_PATHS}
    for expected in ("run", "demo", "status", "export", "human import", "human export-pending", "models list",
                     "models train-reward", "models finetune", "labelstudio up", "labelstudio status", "labeler fit"):
        assert expected in names, f"`juryflow {expected}` is missing"


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=lambda p: " ".join(p) or "(root)")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200, prog_name="juryflow")
    assert result.exit_code == 0, result.output
    assert f"Usage: juryflow {' '.join(path)}".rstrip() in result.output


@pytest.mark.parametrize("module", FLOW_MODULES)
def test_every_flow_module_has_help_and_does_not_run(module: str, tmp_path: Path) -> None:
    env = {**os.environ, "JURYFLOW_CONFIG": str(tmp_path / "none.yaml"), "PREFECT_HOME": str(tmp_path / "prefect")}
    result = subprocess.run([sys.executable, "-m", f"flows.{module}", "--help"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m flows.{module}")
    assert "Beginning flow run" not in result.stdout + result.stderr
    assert not (tmp_path / "prefect" / "prefect.db").exists(), "--help must not start a Prefect API"
