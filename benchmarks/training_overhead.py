"""Reward-model training through juryflow's flow vs bare trl.RewardTrainer: same data, model, config.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/training_overhead.py --pairs 1000 --epochs 3 --repeats 3

Both sides train the same tiny reward model on the same synthetic snapshot with the recipe
recipes/test/reward_model.yaml, in one process, alternating, after one warm-up run. Two figures:
  - trainer samples/s: TRL's own train_samples_per_second (the training loop only);
  - end-to-end samples/s: training pairs x epochs / wall time of the whole stage. For the flow this includes
    Prefect task orchestration, snapshot checks, held-out evaluation before/after, the gate and the
    registry; for the bare side, model load + tokenization + train + save.
Target: the flow's trainer throughput within 5% of bare TRL.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RECIPE = REPO / "recipes" / "test" / "reward_model.yaml"


def bare_trl(base_model: Path, snapshot_dir: Path, out: Path, recipe: Path) -> tuple[float, float, int]:
    """The same steps a user would write by hand with TRL."""
    from datasets import load_from_disk
    from trl import RewardTrainer

    from models.training.config import RewardModelConfig, load_recipe
    from models.training.data import split_by_sample_id, tokenize_pairs
    from models.training.reward import load_reward_model

    start = time.perf_counter()
    config = load_recipe(recipe, RewardModelConfig, output_dir=str(out / "trainer"))
    train, _ = split_by_sample_id(load_from_disk(str(snapshot_dir / "dataset")), config.eval_fraction)
    model, tokenizer = load_reward_model(base_model)
    trainer = RewardTrainer(model=model, args=config, processing_class=tokenizer,
                            train_dataset=tokenize_pairs(train, tokenizer, config.max_length))
    result = trainer.train()
    trainer.save_model(str(out / "model"))
    wall = time.perf_counter() - start
    return result.metrics["train_samples_per_second"], wall, len(train)


def through_flow(base_model: Path, snapshot_id: str, recipe: Path, data_dir: Path) -> tuple[float, float, int]:
    from flows.train_reward_model import train_reward_model
    from models.training.registry import Registry

    os.environ["JURYFLOW__DATA_DIR"] = str(data_dir)
    start = time.perf_counter()
    report = train_reward_model(snapshot_id, str(recipe))
    wall = time.perf_counter() - start
    record = Registry(data_dir / "registry").get("reward_model", report["version"])
    return record.metrics["train_samples_per_second"], wall, record.metrics["n_train"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from models.tiny import build_tiny_reward_model
    from tests.models.training.synthetic import corpus, preference_rows, write_snapshot

    work = Path(tempfile.mkdtemp(prefix="juryflow-bench-"))
    os.environ["JURYFLOW_CONFIG"] = str(work / "absent.yaml")
    data_dir = work / "data"
    base = build_tiny_reward_model(work / "base", corpus(), hidden_size=64, layers=2)
    snapshot_id = write_snapshot(data_dir / "snapshots", preference_rows(args.pairs))
    recipe = work / "recipe.yaml"
    recipe.write_text(re.sub(r"model_name_or_path: \S+", f"model_name_or_path: {base}", RECIPE.read_text())
                      .replace("num_train_epochs: 15", f"num_train_epochs: {args.epochs}"))

    bare, flow = [], []
    with prefect_test_harness(server_startup_timeout=120):
        bare_trl(base, data_dir / "snapshots" / snapshot_id, work / "warm", recipe)  # warm-up: imports, caches
        for i in range(args.repeats):
            bare.append(bare_trl(base, data_dir / "snapshots" / snapshot_id, work / f"bare{i}", recipe))
            flow.append(through_flow(base, snapshot_id, recipe, data_dir))

    def summary(name, runs):
        trainer_sps = statistics.median(r[0] for r in runs)
        e2e_sps = statistics.median(r[2] * args.epochs / r[1] for r in runs)
        print(f"{name:>14}: trainer {trainer_sps:8.1f} samples/s   end-to-end {e2e_sps:8.1f} samples/s   "
              f"(median of {len(runs)}; {runs[0][2]} training pairs)")
        return trainer_sps, e2e_sps

    b_t, b_e = summary("bare TRL", bare)
    f_t, f_e = summary("juryflow flow", flow)
    print(f"ratio flow/bare: trainer {f_t / b_t:.3f}   end-to-end {f_e / b_e:.3f}   (target trainer >= 0.95)")


if __name__ == "__main__":
    main()
