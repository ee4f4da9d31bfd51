"""The gate, through the train-reward-model flow: better -> promoted and used next; worse -> rejected."""

import json

import pytest

from models.training.data import SnapshotError
from models.training.registry import Registry
from tests.models.training.conftest import RECIPES, write_recipe
from tests.models.training.synthetic import preference_rows, write_snapshot


@pytest.mark.slow
def test_better_model_is_promoted_worse_is_rejected(prefect_harness, snapshot_in_data_dir, base_reward_model,
                                                    juryflow_env, monkeypatch, tiny_causal_lm_dir):
    from flows.label_batch import label_batch
    from flows.train_reward_model import train_reward_model
    from labeling.schemas import SampleState
    from labeling.settings import load_settings
    from models.factory import build_labeler
    from models.labelers.reward_model import RewardModelLabeler
    from tasks import resources

    recipe = write_recipe(RECIPES / "test" / "reward_model.yaml", juryflow_env / "rm.yaml",
                          model={"model_name_or_path": base_reward_model})
    first = train_reward_model(snapshot_in_data_dir, str(recipe))
    assert first["promoted"] and first["heldout_accuracy"] >= 0.9 and first["baseline_accuracy"] == 0.5

    settings = load_settings()
    registry = Registry.from_settings(settings)
    record = registry.get("reward_model", first["version"])
    assert record.status == "promoted" and record.snapshot_id == snapshot_in_data_dir
    assert record.metrics["heldout"]["accuracy_human"] > 0 and record.metrics["gate"]["passed"]
    active = resources.store(settings).get_record("labeler", "active")
    assert active["backend"] == "reward_model" and active["version"] == first["version"]
    assert active["model_path"] == str(registry.model_dir("reward_model", first["version"]))

    # What the next label_batch uses, with no settings change: the promoted reward model.
    labeler = build_labeler(load_settings())
    assert isinstance(labeler, RewardModelLabeler) and str(labeler.model_dir) == active["model_path"]
    monkeypatch.setenv("JURYFLOW__JUDGE__MODEL_PATH", str(tiny_causal_lm_dir))
    rows = [{"prompt": r["prompt"], "response_a": r["chosen"], "response_b": r["rejected"], "preferred": "A"}
            for r in preference_rows(24, seed=99)]
    batch = juryflow_env / "next_batch.jsonl"
    batch.write_text("".join(json.dumps(r) + "\n" for r in rows))
    label_batch(str(batch))
    store = resources.store(settings)
    ai_labels = store.get_ai_labels(store.ids_in_state(SampleState.human_pending) + store.ids_in_state(SampleState.labeled))
    assert len(ai_labels) == 24
    assert {(a.labeler_name, a.labeler_version) for a in ai_labels.values()} == {("reward_model", labeler.version)}
    # The promoted model learned the task, so it mostly agrees with the known answers.
    samples = {s.sample_id: s for s in store.get_samples(list(ai_labels))}
    agree = sum(a.preferred == samples[sid].reference_label for sid, a in ai_labels.items())
    assert agree / 24 >= 0.8

    # A barely trained model does not beat the promoted one, so it is kept but rejected.
    weak = write_recipe(RECIPES / "test" / "reward_model.yaml", juryflow_env / "weak.yaml",
                        model={"model_name_or_path": base_reward_model}, training={"max_steps": 1, "learning_rate": 1e-6})
    second = train_reward_model(snapshot_in_data_dir, str(weak))
    assert not second["promoted"] and second["baseline_accuracy"] >= 0.9 and second["heldout_accuracy"] < 0.8
    rejected = registry.get("reward_model", second["version"])
    assert rejected.status == "rejected" and "does not beat" in rejected.status_reason
    assert rejected.metrics["gate"]["baseline_accuracy"] >= 0.9
    assert registry.model_dir("reward_model", second["version"]).is_dir()
    assert resources.store(settings).get_record("labeler", "active")["version"] == first["version"]


@pytest.mark.parametrize("n_rows, message", [(0, "is empty"), (12, "12 preference pairs, fewer than")])
def test_bad_snapshot_fails_before_training(prefect_harness, juryflow_env, n_rows, message):
    from flows.train_reward_model import train_reward_model
    from labeling.settings import load_settings

    snapshot_id = write_snapshot(juryflow_env / "data" / "snapshots", preference_rows(n_rows))
    recipe = write_recipe(RECIPES / "test" / "reward_model.yaml", juryflow_env / "rm.yaml",
                          model={"model_name_or_path": "/does/not/exist"})  # never reached
    with pytest.raises(SnapshotError, match=message):
        train_reward_model(snapshot_id, str(recipe))
    assert Registry.from_settings(load_settings()).list() == []
