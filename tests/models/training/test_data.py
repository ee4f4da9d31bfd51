import pytest
from datasets import Dataset

from models.training.data import SnapshotError, load_preference_snapshot, split_by_sample_id
from tests.models.training.synthetic import preference_rows, write_snapshot


def test_split_is_disjoint_stable_and_by_sample_id():
    rows = Dataset.from_list(preference_rows(200))
    train, held = split_by_sample_id(rows, 0.2)
    assert set(train["sample_id"]).isdisjoint(held["sample_id"])
    assert len(train) + len(held) == 200 and 20 <= len(held) <= 60
    # A bigger snapshot keeps every old sample on its side, so old held-out pairs stay unseen.
    train2, held2 = split_by_sample_id(Dataset.from_list(preference_rows(300)), 0.2)
    assert set(held["sample_id"]) <= set(held2["sample_id"])
    assert set(train["sample_id"]) <= set(train2["sample_id"])


def test_snapshot_round_trip(tmp_path):
    sid = write_snapshot(tmp_path, preference_rows(60))
    rows = load_preference_snapshot(tmp_path / sid, min_size=50)
    assert len(rows) == 60 and rows[0]["source"] == "judge"


def test_empty_snapshot_is_a_clear_error(tmp_path):
    sid = write_snapshot(tmp_path, [])
    with pytest.raises(SnapshotError, match="is empty"):
        load_preference_snapshot(tmp_path / sid, min_size=50)


def test_small_snapshot_names_the_size_and_the_fix(tmp_path):
    sid = write_snapshot(tmp_path, preference_rows(10))
    with pytest.raises(SnapshotError, match=r"10 preference pairs, fewer than min_snapshot_size=50.*min_snapshot_size"):
        load_preference_snapshot(tmp_path / sid, min_size=50)


def test_missing_snapshot_says_how_to_make_one(tmp_path):
    with pytest.raises(SnapshotError, match="export_snapshot"):
        load_preference_snapshot(tmp_path / "nope", min_size=2)


def test_split_that_leaves_a_side_empty_is_refused():
    with pytest.raises(SnapshotError, match="eval_fraction=0.0"):
        split_by_sample_id(Dataset.from_list(preference_rows(20)), 0.0)
