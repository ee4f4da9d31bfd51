"""Training tasks: each works on a whole snapshot split; flows/train_*.py only compose them.

Training tasks never retry: a failed run is a bug or a bad recipe, and repeating it burns GPU
hours. Loading (cheap, and where a bad snapshot is caught) happens before any model is built.
Prints stay out of the run log (``log_prints=False``): datasets' fingerprinting makes dill print
whole disassemblies. The run log gets the trainer's progress and one closing summary line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from labeling.records import read_active_labeler, write_active_labeler
from models.training import config as recipes
from models.training.data import load_preference_snapshot, snapshot_path, split_by_sample_id
from models.training.distributed import lead_training, run_on_ranks, world_size
from models.training.gate import GateDecision, gate_candidate
from models.training.registry import ModelRecord, Registry
from models.training.stages import StageRun, get_stage
from tasks import resources
from tasks.events import emit_reward_model_promoted


@dataclass
class TrainingData:
    stage: str
    config: Any  # the stage's config class from models.training.config
    recipe_path: str
    recipe: dict
    snapshot_id: str
    train: Any  # datasets.Dataset
    held_out: Any


@dataclass(frozen=True)
class TrainingJob:
    """What the other ranks of an ``accelerate launch`` need to join rank 0's training run."""

    snapshot_id: str
    recipe_path: str
    stage: str
    version: str  # rank 0's registry version: every rank builds the same config (output_dir included)
    reward_model_version: str | None


def training_data(snapshot_id: str, recipe: str, stage: str, version: str | None = None) -> TrainingData:
    """Recipe + snapshot, checked (size, columns, split) before any model is loaded; a new registry
    version unless ``version`` is given (the other ranks take rank 0's)."""
    cfg = resources.settings()
    recipe_path = recipes.resolve_recipe(recipe)
    flat = recipes.read_recipe(recipe_path)
    flat.pop("__stage__", None)
    recipes.check_runnable_here(recipe_path, flat, stage)  # before a registry version is taken
    if world_size() > 1 and not get_stage(stage).multi_process:
        raise recipes.RecipeError(f"stage {stage!r} trains on one process, not {world_size()}: run it without "
                                  "accelerate launch (models/training/ppo.py is single-GPU)")
    registry, kind = Registry.from_settings(cfg), get_stage(stage).kind
    version = version or registry.new_version(kind, snapshot_id, flat)
    output_dir = registry.version_dir(kind, version) / "trainer"
    config = recipes.load_recipe(recipe_path, get_stage(stage).config_cls, output_dir=str(output_dir))
    min_size = max(config.min_snapshot_size, cfg.training.min_snapshot_size)
    rows = load_preference_snapshot(snapshot_path(cfg.data_dir, snapshot_id), min_size)
    train, held_out = split_by_sample_id(rows, config.eval_fraction)
    return TrainingData(stage, config, str(recipe_path), flat, snapshot_id, train, held_out)


@task(name="prepare-training-data", cache_policy=NO_CACHE, log_prints=False)
def prepare_training_data(snapshot_id: str, recipe: str, stage: str) -> TrainingData:
    """Recipe + snapshot, checked (size, columns, split) before any model is loaded."""
    data = training_data(snapshot_id, recipe, stage)
    get_run_logger().info("snapshot %s: %d train / %d held-out pairs, version %s", snapshot_id, len(data.train),
                          len(data.held_out), _version_of(data))
    return data


def _numbers(metrics: dict, keys) -> str:
    return " ".join(f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics.get(k), int | float)) or "-"


def _version_of(data: TrainingData) -> str:
    return Path(data.config.output_dir).parent.name


@task(name="fit-reward-model", cache_policy=NO_CACHE, log_prints=False)
def fit_reward_model(data: TrainingData) -> ModelRecord:
    return fit_stage(data, None)


def _train(data: TrainingData, reward_model_version: str | None, log) -> dict:
    registry, stage = Registry.from_settings(resources.settings()), get_stage(data.stage)
    rm_dir = registry.model_dir("reward_model", reward_model_version) if reward_model_version else None
    return stage.train(StageRun(data.config, data.train, data.held_out,
                                registry.model_dir(stage.kind, _version_of(data)), rm_dir, log))


def fit_stage(data: TrainingData, reward_model_version: str | None) -> ModelRecord:
    """Train ``data.stage`` from the stage table and register the model (policies: with their reward model)."""
    registry = Registry.from_settings(resources.settings())
    stage, version = get_stage(data.stage), _version_of(data)
    job = TrainingJob(data.snapshot_id, data.recipe_path, data.stage, version, reward_model_version)
    with lead_training(job):  # under accelerate launch the other ranks train with us meanwhile (follow_training)
        metrics = _train(data, reward_model_version, get_run_logger())
    get_run_logger().info("%s %s trained: %s on %d process(es)", data.stage, version,
                          _numbers(metrics, stage.summary_keys), world_size())
    metrics = {**metrics, "n_processes": world_size()}
    if stage.kind == "policy":
        metrics = {"algorithm": data.stage, "reward_model": reward_model_version, **metrics}
    return registry.register(stage.kind, version, snapshot_id=data.snapshot_id, recipe=data.recipe,
                             recipe_path=data.recipe_path, metrics=metrics, parent_model=data.config.model_name_or_path)


def follow_training(job: TrainingJob) -> None:
    """A rank other than 0: rank 0's fit task without Prefect, the registry or the store; the trainer
    writes nothing here (transformers saves on rank 0 only)."""
    _train(training_data(job.snapshot_id, job.recipe_path, job.stage, job.version), job.reward_model_version,
           logging.getLogger(__name__))


def run_flow_on_ranks(flow_fn: Callable[..., dict], *args: Any) -> dict:
    """``flow_fn(*args)``, once: on rank 0 of an ``accelerate launch`` (the only rank that talks to Prefect,
    the registry and the store) while the other ranks follow its training; every rank returns its result.
    Without a launcher it is just the flow call (models/training/distributed.py says why)."""
    return run_on_ranks(partial(flow_fn, *args), follow_training, close=True)  # one launch, one flow run


@task(name="gate-reward-model", cache_policy=NO_CACHE, log_prints=False)
def gate_reward_model(record: ModelRecord, data: TrainingData) -> GateDecision:
    """Promote (store record + event) or reject the candidate against the current AI labeler."""
    from models.factory import build_labeler
    from models.labelers.reward_model import RewardModelLabeler

    cfg = resources.settings()
    store, registry = resources.store(cfg), Registry.from_settings(cfg)
    model_dir = registry.model_dir("reward_model", record.version)
    decision = gate_candidate(
        RewardModelLabeler(model_dir, batch_size=cfg.labeler.batch_size), build_labeler(cfg, read_active_labeler(store)),
        data.held_out, cfg.training.gate_margin,
        mark=partial(registry.set_status, "reward_model", record.version),
        promote=partial(write_active_labeler, store), model_path=str(model_dir), version=record.version,
    )  # fmt: skip
    if decision.passed:
        emit_reward_model_promoted(record.version, record.snapshot_id, decision.candidate_accuracy)
    get_run_logger().info("reward model %s %s: %s", record.version, "promoted" if decision.passed else "rejected", decision.reason)
    return decision


@task(name="publish-reward-model-report", cache_policy=NO_CACHE, log_prints=False)
def publish_reward_model_report(record: ModelRecord, decision: GateDecision) -> dict:
    heldout = record.metrics["heldout"]
    lines = [f"# Reward model {record.version}", "", f"snapshot `{record.snapshot_id}`, parent `{record.parent_model}`", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| held-out {k} | {v:.3f} |" if isinstance(v, float) else f"| held-out {k} | {v} |" for k, v in heldout.items()]
    lines += [f"| accuracy before training | {record.metrics['heldout_before']['accuracy']:.3f} |",
              f"| gate | {'PROMOTED' if decision.passed else 'REJECTED'}: {decision.reason} |"]
    create_markdown_artifact(key="reward-model-report", markdown="\n".join(lines), description=f"reward model {record.version}")
    get_run_logger().info("train-reward-model summary: version %s, held-out accuracy %.3f (before training %.3f), "
                          "baseline %.3f, %d held-out pairs, %s", record.version, heldout["accuracy"],
                          record.metrics["heldout_before"]["accuracy"], decision.baseline_accuracy, heldout["n_pairs"],
                          "PROMOTED" if decision.passed else "REJECTED")
    return {"version": record.version, "promoted": decision.passed, "heldout_accuracy": heldout["accuracy"],
            "baseline_accuracy": decision.baseline_accuracy, "gate_reason": decision.reason}


@task(name="prepare-policy-data", cache_policy=NO_CACHE, log_prints=False)
def prepare_policy_data(reward_model_version: str, algorithm: str, recipe: str | None) -> TrainingData:
    get_stage(algorithm, kind="policy")  # an unknown algorithm is refused before anything is read
    registry = Registry.from_settings(resources.settings())
    rm = registry.get("reward_model", reward_model_version)
    if rm.status == "rejected":
        raise ValueError(f"reward model {reward_model_version} was rejected by the gate ({rm.status_reason}): "
                         "fine-tune against a promoted version (`juryflow models list`)")
    return prepare_training_data.fn(rm.snapshot_id, recipe or f"recipes/{algorithm}.yaml", algorithm)


@task(name="fit-policy", cache_policy=NO_CACHE, log_prints=False)
def fit_policy(data: TrainingData, reward_model_version: str) -> ModelRecord:
    return fit_stage(data, reward_model_version)


@task(name="evaluate-policy", cache_policy=NO_CACHE, log_prints=False)
def evaluate_policy(record: ModelRecord, data: TrainingData, reward_model_version: str) -> dict:
    """RM score before/after, KL to the SFT reference and win rate, on held-out prompts; a Prefect artifact."""
    from models.training.evaluate import evaluate_policy_dir

    registry = Registry.from_settings(resources.settings())
    prompts = list(dict.fromkeys(data.held_out["prompt"]))
    report = evaluate_policy_dir(data.config, registry.model_dir("policy", record.version),
                                 registry.model_dir("reward_model", reward_model_version), prompts)
    registry.set_status("policy", record.version, "candidate", "evaluated on held-out prompts", {"heldout": report})
    lines = [f"# Policy {record.version} ({data.stage}, reward model {reward_model_version})", "",
             "| measure | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                                                   for k, v in report.items()]
    create_markdown_artifact(key="policy-report", markdown="\n".join(lines), description=f"policy {record.version}")
    get_run_logger().info("finetune-policy summary: %s policy %s, %s", data.stage, record.version,
                          _numbers(report, ("rm_score_before", "rm_score_after", "kl_to_reference",
                                            "win_rate_vs_reference", "n_prompts")))
    return {"version": record.version, "algorithm": data.stage, **report}
