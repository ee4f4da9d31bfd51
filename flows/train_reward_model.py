"""Train a reward model on a labeling snapshot, gate it against the AI labeler, promote or reject.

    python -m flows.train_reward_model <snapshot_id> [recipes/reward_model.yaml]

Deployed as `train-reward-model`, triggered by the `juryflow.labels.ready` event (prefect.yaml).
"""

from __future__ import annotations

import sys

from prefect import flow

from tasks.training import fit_reward_model, gate_reward_model, prepare_training_data, publish_reward_model_report


@flow(name="train-reward-model", log_prints=True)
def train_reward_model(snapshot_id: str, recipe: str = "recipes/reward_model.yaml") -> dict:
    data = prepare_training_data(snapshot_id, recipe, "reward_model")
    record = fit_reward_model(data)
    decision = gate_reward_model(record, data)
    return publish_reward_model_report(record, decision)


if __name__ == "__main__":
    train_reward_model(*sys.argv[1:3])
