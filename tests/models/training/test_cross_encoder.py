"""The MiniLM cross-encoder labeler: RewardTrainer on a BERT-style encoder, through the same
training path, gate and promotion as any reward model ("the loop feeds its own labeler")."""

from __future__ import annotations

import json

import pytest

from models.labelers.embedding import ENCODER_NAME, bundled_encoder_path
from models.training.loading import resolve_base_model
from tests.models.training.conftest import RECIPES, write_recipe
from tests.models.training.synthetic import preference_rows


def test_encoder_hub_id_resolves_to_the_bundled_weights(tmp_path) -> None:
    assert resolve_base_model(ENCODER_NAME) == str(bundled_encoder_path())
    assert (bundled_encoder_path() / "config.json").is_file()
    assert resolve_base_model(tmp_path) == str(tmp_path)  # a local directory is used as given
    assert resolve_base_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


def test_long_pairs_are_cut_from_the_left_not_dropped() -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer

    from models.training.data import tokenize_pairs

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_encoder_path()))
    rows = Dataset.from_dict(
        {"prompt": ["word " * 500, "short"], "chosen": ["the good end"] * 2, "rejected": ["the bad end"] * 2}
    )
    encoded = tokenize_pairs(rows, tokenizer, max_length=32)
    assert len(encoded) == 2  # the long multi-turn pair is kept, not filtered out
    long_ids = encoded["chosen_ids"][0]
    assert len(long_ids) == 32 and long_ids[0] == tokenizer.cls_token_id  # special tokens survive the cut
    assert tokenizer.decode(long_ids, skip_special_tokens=True).endswith("the good end")  # the response is kept


@pytest.mark.slow
def test_cross_encoder_is_trained_promoted_and_labels_the_next_batch(
    prefect_harness, snapshot_in_data_dir, juryflow_env
) -> None:
    from flows.train_reward_model import train_reward_model
    from labeling.schemas import Sample
    from labeling.settings import load_settings
    from models.factory import build_labeler
    from models.labelers.reward_model import RewardModelLabeler

    # One epoch: on these 320 training pairs it already reaches held-out accuracy 1.0 (the recipe's 3 are
    # for the small snapshots of the README commands), and costs 15 s of CPU instead of 51.
    recipe = write_recipe(RECIPES / "test" / "labeler_cross_encoder.yaml", juryflow_env / "xenc.yaml",
                          training={"num_train_epochs": 1})
    result = train_reward_model(snapshot_in_data_dir, str(recipe))
    assert result["promoted"] and result["heldout_accuracy"] >= 0.9, result

    labeler = build_labeler(load_settings())  # the promoted model, with no settings change
    assert isinstance(labeler, RewardModelLabeler)
    assert json.loads((labeler.model_dir / "config.json").read_text())["model_type"] == "bert"
    assert json.loads((labeler.model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 64
    rows = preference_rows(40, seed=7)
    samples = [
        Sample(sample_id=r["sample_id"], prompt=r["prompt"],
               response_a=r["chosen"] if i % 2 else r["rejected"], response_b=r["rejected"] if i % 2 else r["chosen"])
        for i, r in enumerate(rows)
    ]  # fmt: skip
    with labeler:
        labels = labeler.label(samples)
    agree = sum(lab.preferred == ("A" if i % 2 else "B") for i, lab in enumerate(labels))
    assert agree / len(labels) >= 0.85
