"""The training stages, in one table: each has a config class, a registry kind and a ``train``
function with the same signature, ``train(run: StageRun) -> metrics``.

The training tasks look a stage up by name here; nothing else lists stage names. Trainer modules
are imported inside each ``train`` so that looking up a stage (or validating a recipe) stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from models.training.config import (
    DPOStageConfig,
    GRPOStageConfig,
    PPOConfig,
    RewardModelConfig,
    RLOOStageConfig,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageRun:
    """Everything a stage trains from; ``reward_model_dir`` is None for the reward-model stage."""

    config: Any  # the stage's config_cls
    train_rows: Any  # datasets.Dataset with prompt, chosen, rejected, sample_id, source
    held_out_rows: Any
    model_dir: Path
    reward_model_dir: Path | None = None
    log: logging.Logger | logging.LoggerAdapter = field(default=logger)  # the task passes Prefect's run logger


@dataclass(frozen=True)
class Stage:
    config_cls: type  # its STAGE names the stage, as a recipe's ``stage:`` key does
    kind: Literal["reward_model", "policy"]  # the registry folder its models go to
    train: Callable[[StageRun], dict]
    summary_keys: tuple[str, ...]  # the headline numbers of its closing log line
    # Trains correctly under `accelerate launch` with several processes (the TRL trainers do); our PPO
    # loop has no gradient sync, so N ranks would train N different policies.
    multi_process: bool = True

    @property
    def name(self) -> str:
        return self.config_cls.STAGE


def _progress_callbacks(run: StageRun) -> list:
    from models.training.progress import LogProgress

    return [LogProgress(run.log)]


def _train_reward_model(run: StageRun) -> dict:
    from models.training.reward import train_reward_model

    return train_reward_model(run.config, run.train_rows, run.held_out_rows, run.model_dir, _progress_callbacks(run))


def _train_dpo(run: StageRun) -> dict:
    from models.training.dpo import train_dpo

    return train_dpo(run.config, run.train_rows, run.held_out_rows, run.model_dir, _progress_callbacks(run))


def _train_ppo(run: StageRun) -> dict:
    from models.training.ppo import train_ppo

    def log(iteration: int, stats: dict) -> None:
        run.log.info("ppo iteration %d: %s", iteration, " ".join(f"{k}={v:.4g}" for k, v in stats.items()))

    return train_ppo(run.config, run.train_rows, _reward_dir(run), run.model_dir, log)


def _train_online(run: StageRun) -> dict:
    from models.training.online import train_online

    return train_online(run.config, run.train_rows, _reward_dir(run), run.model_dir, _progress_callbacks(run))


def _reward_dir(run: StageRun) -> Path:
    if run.reward_model_dir is None:
        raise ValueError(f"stage {type(run.config).__name__} scores with a reward model: pass reward_model_dir")
    return run.reward_model_dir


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(RewardModelConfig, "reward_model", _train_reward_model, ("train_loss",)),
        Stage(PPOConfig, "policy", _train_ppo, ("reward_first", "reward_last", "kl_last"), multi_process=False),
        Stage(DPOStageConfig, "policy", _train_dpo, ("train_loss",)),
        Stage(RLOOStageConfig, "policy", _train_online, ("train_loss", "reward_first", "reward_last")),
        Stage(GRPOStageConfig, "policy", _train_online, ("train_loss", "reward_first", "reward_last")),
    )
}
POLICY_ALGORITHMS = tuple(name for name, s in STAGES.items() if s.kind == "policy")


def get_stage(name: str, kind: str | None = None) -> Stage:
    """The stage called ``name`` (of registry ``kind`` if given); the error lists the valid names."""
    choices = [n for n, s in STAGES.items() if kind is None or s.kind == kind]
    if name not in choices:
        what = "algorithm" if kind == "policy" else "stage"
        raise ValueError(f"{what} {name!r} is not one of {tuple(choices)}: pass e.g. {what}={choices[0]!r}")
    return STAGES[name]

