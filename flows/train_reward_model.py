"""Train a reward model on a labeling snapshot, gate it against the AI labeler, promote or reject.

    python -m flows.train_reward_model <snapshot_id> [recipes/reward_model.yaml]
    accelerate launch --num_processes 8 -m flows.train_reward_model <snapshot_id> recipes/reward_model.yaml

Under accelerate launch only rank 0 runs this flow (one flow run, one version, one gate); the other
ranks join its training and print the same result (models/training/distributed.py).

Deployed as `train-reward-model`, triggered by the `juryflow.labels.ready` event (prefect.yaml).
"""

from __future__ import annotations

from prefect import flow

from flows._main import parser_for, run_main
from flows.summaries import training_line


@flow(name="train-reward-model")
def train_reward_model(snapshot_id: str, recipe: str = "recipes/reward_model.yaml") -> dict:
    # Imported here so that `--help` answers without loading torch and TRL (~20 s of CPU).
    from tasks.training import fit_reward_model, gate_reward_model, prepare_training_data, publish_reward_model_report

    data = prepare_training_data(snapshot_id, recipe, "reward_model")
    record = fit_reward_model(data)
    decision = gate_reward_model(record, data)
    return publish_reward_model_report(record, decision)


def main(argv: list[str] | None = None) -> None:
    parser = parser_for(__doc__, "python -m flows.train_reward_model")
    parser.add_argument("snapshot_id", help="a snapshot under <data_dir>/snapshots/ (`juryflow export` prints its id)")
    parser.add_argument("recipe", nargs="?", default="recipes/reward_model.yaml", help="reward-model recipe YAML")

    def start(args):
        from juryflow.preflight import check_recipe
        from tasks.training import run_flow_on_ranks

        check_recipe(args.recipe, "reward_model")
        result = run_flow_on_ranks(train_reward_model, args.snapshot_id, args.recipe)  # one flow run, on rank 0
        return result, training_line("train-reward-model", result)

    run_main(parser, start, argv)


if __name__ == "__main__":
    main()
