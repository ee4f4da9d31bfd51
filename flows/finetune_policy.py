"""Fine-tune the SFT policy against a promoted reward model: PPO (ours), DPO, RLOO or GRPO (TRL).

    python -m flows.finetune_policy <reward_model_version> [ppo|dpo|rloo|grpo] [recipe.yaml]
    accelerate launch --num_processes 8 -m flows.finetune_policy <reward_model_version> dpo recipes/dpo.yaml

Under accelerate launch only rank 0 runs this flow; the other ranks join its training (DPO, RLOO,
GRPO; PPO is single-process) and print the same result (models/training/distributed.py).

Deployed as `finetune-policy`, triggered by `juryflow.reward_model.promoted` (prefect.yaml).
The recipe's model_name_or_path must be a chat (SFT) model.
"""

from __future__ import annotations

from prefect import flow

from flows._main import parser_for, run_main
from flows.summaries import training_line


@flow(name="finetune-policy")
def finetune_policy(reward_model_version: str, algorithm: str = "ppo", recipe: str | None = None) -> dict:
    # Imported here so that `--help` answers without loading torch and TRL (~20 s of CPU).
    from tasks.training import evaluate_policy, fit_policy, prepare_policy_data

    data = prepare_policy_data(reward_model_version, algorithm, recipe)
    record = fit_policy(data, reward_model_version)
    return evaluate_policy(record, data, reward_model_version)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, "python -m flows.finetune_policy")
    parser.add_argument("reward_model_version", help="a promoted reward model (`juryflow models list`)")
    parser.add_argument("algorithm", nargs="?", default="ppo", choices=["ppo", "dpo", "rloo", "grpo"])
    parser.add_argument("recipe", nargs="?", default=None, help="recipe YAML; default recipes/<algorithm>.yaml")

    def start(args):
        from juryflow.preflight import check_recipe
        from tasks.training import run_flow_on_ranks

        check_recipe(args.recipe or f"recipes/{args.algorithm}.yaml", args.algorithm)
        result = run_flow_on_ranks(finetune_policy, args.reward_model_version, args.algorithm, args.recipe)  # rank 0
        return result, training_line("finetune-policy", result)

    run_main(parser, start, argv)


if __name__ == "__main__":
    main()
