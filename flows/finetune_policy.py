"""Fine-tune the SFT policy against a promoted reward model: PPO (ours), DPO, RLOO or GRPO (TRL).

    python -m flows.finetune_policy <reward_model_version> [ppo|dpo|rloo|grpo] [recipe.yaml]

Deployed as `finetune-policy`, triggered by `juryflow.reward_model.promoted` (prefect.yaml).
The recipe's model_name_or_path must be a chat (SFT) model.
"""

from __future__ import annotations

import sys

from prefect import flow

from tasks.training import evaluate_policy, fit_policy, prepare_policy_data


@flow(name="finetune-policy", log_prints=True)
def finetune_policy(reward_model_version: str, algorithm: str = "ppo", recipe: str | None = None) -> dict:
    data = prepare_policy_data(reward_model_version, algorithm, recipe)
    record = fit_policy(data, reward_model_version)
    return evaluate_policy(record, data, reward_model_version)


if __name__ == "__main__":
    finetune_policy(*sys.argv[1:4])
