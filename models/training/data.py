"""Read a labeling snapshot and shape it for each training stage.

A snapshot is the directory ``labeling/export.py`` writes: ``<root>/<snapshot_id>/`` with
``dataset/`` (``datasets.save_to_disk``), ``data.parquet`` and ``snapshot.json``. Columns:
prompt, chosen, rejected (plain text), sample_id, source, labeler_version, judge_version,
confidence, n_annotators, p_wrong (optional: older snapshots lack it). The train/held-out split
hashes ``sample_id``, so a sample stays on the same side in every snapshot that contains it,
and a reward model is never gated on pairs it trained on in an earlier version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from labeling.schemas import unit_hash

if TYPE_CHECKING:
    from datasets import Dataset

REQUIRED_COLUMNS = ("prompt", "chosen", "rejected", "sample_id", "source")
SPLIT_SALT = "juryflow-train-eval-split"  # change it and every sample may change sides


class SnapshotError(ValueError):
    """A snapshot is missing, malformed or too small to train on."""


def snapshot_path(data_dir: str | Path, snapshot_id: str) -> Path:
    """Where ``export_snapshot`` puts a snapshot: ``<data_dir>/snapshots/<snapshot_id>``."""
    return Path(data_dir) / "snapshots" / snapshot_id


def load_preference_snapshot(path: str | Path, min_size: int) -> Dataset:
    """The snapshot's rows, checked for columns and size before any model is loaded."""
    from datasets import load_from_disk

    path = Path(path)
    dataset_dir = path / "dataset"
    if not dataset_dir.is_dir():
        raise SnapshotError(
            f"snapshot {str(path)!r} has no dataset/ directory: export one with labeling.export.export_snapshot "
            "(the label-batch flow does this) and pass its snapshot_id"
        )
    meta_path = path / "snapshot.json"
    if meta_path.is_file():  # check the size from the metadata first: cheap, and empty datasets fail to load
        _check_size(path, int(json.loads(meta_path.read_text())["n_rows"]), min_size)
    dataset = load_from_disk(str(dataset_dir))
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise SnapshotError(f"snapshot {str(path)!r} lacks columns {missing}; it has {dataset.column_names}")
    _check_size(path, len(dataset), min_size)
    for row, sample_id in enumerate(dataset["sample_id"]):
        if not sample_id:
            raise SnapshotError(f"snapshot {str(path)!r} row {row}: field 'sample_id' is empty")
    return dataset


def _check_size(path: Path, n_rows: int, min_size: int) -> None:
    if n_rows == 0:
        raise SnapshotError(f"snapshot {str(path)!r} is empty: label some samples before training")
    if n_rows < min_size:
        raise SnapshotError(
            f"snapshot {str(path)!r} has {n_rows} preference pairs, fewer than min_snapshot_size={min_size}: "
            "label more samples, or lower data.min_snapshot_size in the recipe"
        )


def is_held_out(sample_id: str, eval_fraction: float) -> bool:
    return unit_hash(SPLIT_SALT, sample_id) < eval_fraction


def split_by_sample_id(dataset: Dataset, eval_fraction: float) -> tuple[Dataset, Dataset]:
    """(train, held_out); raises if either side is empty, naming the sizes."""
    held = [is_held_out(s, eval_fraction) for s in dataset["sample_id"]]
    train = dataset.select([i for i, h in enumerate(held) if not h])
    held_out = dataset.select([i for i, h in enumerate(held) if h])
    if len(train) == 0 or len(held_out) == 0:
        raise SnapshotError(
            f"splitting {len(dataset)} pairs with eval_fraction={eval_fraction} left {len(train)} to train and "
            f"{len(held_out)} held out: use a bigger snapshot or an eval_fraction between 0.1 and 0.5"
        )
    return train, held_out


def with_p_wrong(dataset: Dataset) -> Dataset:
    """The rows with ``p_wrong`` as a float in [0, 1] for noise-aware training; null (no evidence) becomes 0."""
    if "p_wrong" not in dataset.column_names:
        raise SnapshotError(
            f"the training rows have no 'p_wrong' column (columns: {dataset.column_names}): export the snapshot "
            "again with this juryflow (labeling.export adds it), or set training.noise_aware: false"
        )
    values = [0.0 if p is None else float(p) for p in dataset["p_wrong"]]
    for sample_id, p in zip(dataset["sample_id"], values, strict=True):
        if not 0.0 <= p <= 1.0:  # NaN fails this too
            raise SnapshotError(f"sample {sample_id!r}: field 'p_wrong' is {p}, not a probability in [0, 1]")
    return dataset.remove_columns("p_wrong").add_column("p_wrong", values)


def pair_text(tokenizer, prompt: str, response: str) -> str:
    """Reward-model input text, formatted exactly as RewardModelLabeler formats it at labeling time."""
    from models.labelers.reward_model import format_pair_text

    return format_pair_text(tokenizer, prompt, response)


def tokenize_pairs(dataset: Dataset, tokenizer, max_length: int | None) -> Dataset:
    """``chosen_ids`` / ``rejected_ids`` as RewardTrainer takes them, tokenized as the labeler does.

    Tokenizing here (not inside RewardTrainer) keeps training and labeling byte-identical: the
    trainer would otherwise append EOS, which the labeler does not see. Long texts are cut from
    the left to ``max_length``, as RewardModelLabeler cuts them: the response, at the end, is what
    is scored, and dropping long pairs instead would drop exactly the multi-turn conversations.
    """
    tokenizer.truncation_side = "left"
    kwargs = {"truncation": True, "max_length": max_length} if max_length is not None else {}

    def encode(batch: dict) -> dict:
        out: dict[str, list] = {"chosen_ids": [], "rejected_ids": []}
        for prompt, chosen, rejected in zip(batch["prompt"], batch["chosen"], batch["rejected"], strict=True):
            out["chosen_ids"].append(tokenizer(pair_text(tokenizer, prompt, chosen), **kwargs)["input_ids"])
            out["rejected_ids"].append(tokenizer(pair_text(tokenizer, prompt, rejected), **kwargs)["input_ids"])
        return out

    return dataset.map(encode, batched=True, desc="tokenizing preference pairs")


def user_turn(text: str) -> list[dict[str, str]]:
    """A prompt as a one-turn conversation: the form every trainer and exporter applies a chat template to."""
    return [{"role": "user", "content": text}]


def assistant_turn(text: str) -> list[dict[str, str]]:
    """A response as the assistant's turn of that conversation."""
    return [{"role": "assistant", "content": text}]


def chat_prompts(dataset: Dataset) -> Dataset:
    """Unique prompts as one-turn conversations, the form DPO/RLOO/GRPO apply the chat template to."""
    from datasets import Dataset as HFDataset

    seen: dict[str, None] = {}
    for prompt in dataset["prompt"]:
        seen.setdefault(prompt, None)
    return HFDataset.from_dict({"prompt": [user_turn(p) for p in seen]})


def dpo_rows(dataset: Dataset) -> Dataset:
    """Conversational preference rows for DPOTrainer (it applies the policy's chat template); p_wrong rides along."""
    from datasets import Dataset as HFDataset

    rows = {
        "prompt": [user_turn(p) for p in dataset["prompt"]],
        "chosen": [assistant_turn(c) for c in dataset["chosen"]],
        "rejected": [assistant_turn(r) for r in dataset["rejected"]],
    }
    if "p_wrong" in dataset.column_names:
        rows["p_wrong"] = dataset["p_wrong"]
    return HFDataset.from_dict(rows)
