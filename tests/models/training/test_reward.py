from models.labelers.reward_model import RewardModelLabeler
from models.training.gate import heldout_samples, labeler_accuracy
from models.training.reward import load_reward_model


def test_reward_model_learns_the_task(trained_reward_model, base_reward_model, task_rows):
    """The session fixture trains it (>= 0.9 asserted there); here: before vs after, per source."""
    from datasets import Dataset

    from models.training.data import split_by_sample_id
    from models.training.evaluate import pairwise_accuracy

    _, held = split_by_sample_id(Dataset.from_list(task_rows), 0.2)
    before = pairwise_accuracy(*load_reward_model(base_reward_model), held)
    after = pairwise_accuracy(*load_reward_model(trained_reward_model), held)
    assert 0.3 <= before["accuracy"] <= 0.7, before
    assert after["accuracy"] >= 0.9, after
    for source in ("judge", "human", "human_over_judge"):
        assert after[f"n_{source}"] > 0 and after[f"accuracy_{source}"] >= 0.8


def test_labeler_reads_the_trained_model_as_training_formatted_it(trained_reward_model, task_rows):
    """RewardModelLabeler (the next AI labeler) agrees with training's own held-out accuracy."""
    from datasets import Dataset

    from models.training.data import split_by_sample_id

    _, held = split_by_sample_id(Dataset.from_list(task_rows), 0.2)
    samples, answers = heldout_samples(held)
    labeler = RewardModelLabeler(trained_reward_model, device="cpu")
    assert labeler_accuracy(labeler, samples, answers) >= 0.9
    assert labeler_accuracy(None, samples, answers) == 0.5
