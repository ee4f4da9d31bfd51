"""Training-stage configs: TRL's own configs plus only the fields juryflow adds.

A recipe is a YAML file in alignment-handbook style, with three sections:

    model:    which weights to start from (model_name_or_path, sft_model_path, LoRA)
    data:     how to split and filter the snapshot (eval_fraction, min_snapshot_size, ...)
    training: the trainer's own hyperparameters (learning_rate, num_train_epochs, bf16, ...)

The sections only group keys for people; they are flattened into one config object. A key
the stage config does not know is an error naming the key, so a typo never silently falls
back to a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from transformers import TrainingArguments
from trl import DPOConfig, GRPOConfig, RewardConfig, RLOOConfig

from labeling.errors import UserError

RECIPE_SECTIONS = ("model", "data", "training")
REPO_ROOT = Path(__file__).resolve().parents[2]
# Precision switches TrainingArguments accepts only with a GPU (bf16 also with use_cpu: CPU autocast).
GPU_ONLY_KEYS = ("bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval")


class RecipeError(UserError, ValueError):
    """A recipe file is missing, malformed, or names keys its stage does not know."""


@dataclass
class SnapshotFields:
    """Fields every stage shares: where to start and how much data is enough."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Starting weights (a local directory or hub id) for the trained model."}
    )
    min_snapshot_size: int = field(
        default=50, metadata={"help": "Fewest preference pairs a snapshot needs before this stage trains on it."}
    )
    eval_fraction: float = field(
        default=0.2, metadata={"help": "Share of samples held out, chosen by a hash of sample_id (stable across runs)."}
    )


@dataclass
class LoraFields:
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of all weights."})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Module names to adapt; None = PEFT's default for the architecture."}
    )


NOISE_LOSSES = ("soft", "bounded")


@dataclass
class NoiseAwareFields:
    noise_aware: bool = field(
        default=False,
        metadata={
            "help": "Use each pair's p_wrong in the loss (models/training/noise_aware.py), as noise_loss says. "
            "Off by default: benchmarks/noise_aware.py did not find a gain on the HH file (issue 16)."
        },
    )
    noise_loss: str = field(
        default="soft",
        metadata={
            "help": "With noise_aware: 'soft' (targets 1 - p_wrong) or 'bounded' (the likelihood of a label "
            "flipped with probability p_wrong; reward model only). On a flexible reward model soft cost 5.6 "
            "points of clean accuracy and bounded gained 6.5 (benchmarks/noise_aware.py)."
        },
    )

    def __post_init__(self) -> None:
        if self.noise_loss not in NOISE_LOSSES:
            raise RecipeError(
                f"training.noise_loss is {self.noise_loss!r}: allowed values are {', '.join(NOISE_LOSSES)}"
            )
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()


@dataclass
class RewardModelConfig(NoiseAwareFields, SnapshotFields, RewardConfig):
    """TRL's RewardConfig + snapshot fields. ``model_name_or_path`` is the reward model's base."""

    STAGE: ClassVar[str] = "reward_model"


@dataclass
class DPOStageConfig(NoiseAwareFields, LoraFields, SnapshotFields, DPOConfig):
    """TRL's DPOConfig + snapshot and LoRA fields. ``model_name_or_path`` must be a chat (SFT) model."""

    STAGE: ClassVar[str] = "dpo"

    def __post_init__(self) -> None:
        super().__post_init__()
        # Refused at recipe load, before any model loads or a registry version is taken.
        if self.noise_aware and self.noise_loss != "soft":
            raise RecipeError(
                f"training.noise_loss is {self.noise_loss!r}, but noise-aware DPO has the soft loss only "
                "(conservative DPO): set training.noise_loss: soft, or use bounded for the reward model"
            )


@dataclass
class RLOOStageConfig(LoraFields, SnapshotFields, RLOOConfig):
    """TRL's RLOOConfig; the reward function is our reward model."""

    STAGE: ClassVar[str] = "rloo"


@dataclass
class GRPOStageConfig(LoraFields, SnapshotFields, GRPOConfig):
    """TRL's GRPOConfig; the reward function is our reward model. Keep ``beta > 0`` (KL to the SFT model)."""

    STAGE: ClassVar[str] = "grpo"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta <= 0:
            raise RecipeError(
                f"grpo beta is {self.beta}: without a KL penalty the policy drifts from the SFT model and "
                "games the reward model; set training.beta > 0 (e.g. 0.04)"
            )


@dataclass
class PPOConfig(SnapshotFields, TrainingArguments):
    """Our own PPO (models/training/ppo.py). TrainingArguments gives device, precision and seed handling.

    ``model_name_or_path`` is the SFT policy; it must be a chat model (it needs a chat template),
    because prompts are rendered with ``apply_chat_template(..., add_generation_prompt=True)``.
    """

    STAGE: ClassVar[str] = "ppo"

    rollout_batch_size: int = field(default=64, metadata={"help": "Prompts per PPO iteration."})
    mini_batch_size: int = field(default=16, metadata={"help": "Rollouts per gradient step."})
    ppo_epochs: int = field(default=4, metadata={"help": "Passes over each rollout batch (InstructGPT used 4)."})
    num_iterations: int = field(default=100, metadata={"help": "Rollout-then-optimise rounds."})
    max_new_tokens: int = 64
    temperature: float = 1.0
    gamma: float = 1.0  # no discounting within a response: the reward arrives once, at the end
    lam: float = 0.95  # GAE lambda
    cliprange: float = 0.2  # PPO ratio clip epsilon (Schulman et al. 2017)
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    init_kl_coef: float = 0.05  # beta in r - beta * KL
    adaptive_kl: bool = False  # Ziegler et al. 2019 proportional controller
    target_kl: float = 6.0  # nats per response the controller aims for
    kl_horizon: int = 10_000
    whiten_rewards: bool = False
    eval_max_prompts: int = 64



C = TypeVar("C")


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe path as given, or relative to the repository (deployments and CLIs run from anywhere)."""
    path = Path(recipe)
    if not path.is_file() and not path.is_absolute() and (REPO_ROOT / path).is_file():
        path = REPO_ROOT / path
    return path


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe's sections flattened into one dict; errors name the file and the section."""
    path = resolve_recipe(path)
    if not path.is_file():
        raise RecipeError(f"recipe {str(path)!r} does not exist: pass a file under recipes/, e.g. recipes/dpo.yaml")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {str(path)!r} is not a mapping of sections {RECIPE_SECTIONS}")
    unknown_sections = sorted(set(raw) - set(RECIPE_SECTIONS) - {"stage"})
    if unknown_sections:
        raise RecipeError(
            f"recipe {str(path)!r} has unknown sections {unknown_sections}: use only {list(RECIPE_SECTIONS)}"
        )
    flat: dict[str, Any] = {}
    for section in RECIPE_SECTIONS:
        for key, value in (raw.get(section) or {}).items():
            if key in flat:
                raise RecipeError(f"recipe {str(path)!r} sets {key!r} in two sections: keep one")
            flat[key] = value
    if "stage" in raw:
        flat["__stage__"] = raw["stage"]
    return flat


def load_recipe(path: str | Path, config_cls: type[C], **overrides: Any) -> C:
    """Build ``config_cls`` from a recipe file; ``overrides`` (e.g. output_dir) win over the file."""
    flat = read_recipe(path)
    stage = flat.pop("__stage__", None)
    expected = getattr(config_cls, "STAGE", None)
    if stage is not None and expected is not None and stage != expected:
        raise RecipeError(f"recipe {str(path)!r} is for stage {stage!r}, not {expected!r}: pass the {expected} recipe")
    flat.update(overrides)
    check_runnable_here(path, flat, expected)
    known = {f.name for f in dataclasses.fields(config_cls) if f.init}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise RecipeError(
            f"recipe {str(path)!r} has keys {config_cls.__name__} does not know: {unknown}; "
            "fix their spelling or remove them (see the TRL config docs for valid names)"
        )
    return config_cls(**flat)


def check_runnable_here(path: str | Path, flat: dict[str, Any], stage: str | None) -> None:
    """Refuse, in one line, a recipe that cannot start here: no model, or GPU-only precision on a CPU.

    Checked when the recipe is loaded, before any snapshot or model is, so the user's mistake is
    never a traceback from deep inside TrainingArguments or a trainer.
    """
    example = {"reward_model": "juryflow-tiny/reward-model"}.get(stage or "", "juryflow-tiny/chat-policy")
    if not flat.get("model_name_or_path"):
        raise RecipeError(
            f"recipe {str(path)!r} sets no model.model_name_or_path: name the starting model "
            f"(a local directory or hub id; on a CPU, offline: {example})"
        )
    if flat.get("use_cpu"):
        return  # explicit CPU: TrainingArguments itself judges what CPU autocast allows
    import torch

    if torch.cuda.is_available():
        return
    for key in GPU_ONLY_KEYS:
        if flat.get(key):
            raise RecipeError(
                f"recipe {str(path)!r} sets training.{key}: true, which needs a CUDA GPU and this machine has none: "
                f"use recipes/test/{stage or 'reward_model'}.yaml or set training.{key}: false"
            )
