"""Files that hold secrets stay out of git; flows do not capture print() into their logs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
@pytest.mark.parametrize("path", ["juryflow.yaml", "juryflow-demo/juryflow.yaml", "juryflow-demo/labelstudio/credentials.json",
                                  "configs/juryflow.yaml"])
def test_settings_files_with_secrets_are_ignored(path: str) -> None:
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
    assert done.returncode == 0, f"{path} is not git-ignored: add it to .gitignore"


def test_the_example_settings_stay_tracked() -> None:
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", "juryflow.example.yaml"], cwd=REPO)
    assert done.returncode == 1


def test_flows_do_not_log_prints() -> None:
    # log_prints captured dill's bytecode disassembly from datasets' fingerprinting into the run logs.
    from flows.evaluate_routing import evaluate_routing
    from flows.finetune_policy import finetune_policy
    from flows.harvest_reviews import harvest_reviews
    from flows.label_batch import label_batch
    from flows.recalibrate import recalibrate
    from flows.train_reward_model import train_reward_model

    for fl in (evaluate_routing, finetune_policy, harvest_reviews, label_batch, recalibrate, train_reward_model):
        assert not fl.log_prints, f"flow {fl.name} sets log_prints"
