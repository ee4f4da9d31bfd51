"""A snapshot as verl's RL prompt set: one Parquet file in the schema verl's PPO trainer reads.

Pinned: verl==0.9.1 (the PyPI wheel). ``RLHFDataset._read_files_and_tokenize`` loads a ``.parquet``
file with ``datasets.load_dataset("parquet")``. Where each column is read in that release:

- ``prompt``: chat messages; ``verl/utils/dataset/rl_dataset.py::RLHFDataset`` reads
  ``config.get("prompt_key", "prompt")`` and builds the raw chat from it (``_build_messages``).
- ``data_source``, ``reward_model``, ``extra_info``: handed to the reward function per sample
  (``verl/trainer/ppo/ray_trainer.py``: ``reward_keys = {"data_source", "reward_model",
  "extra_info", "uid"}``; ``reward_model["ground_truth"]`` is read for the validation metrics).
  ``RLHFDataset.__getitem__`` reads ``extra_info["index"]`` (and tools/interaction kwargs, absent here).
- ``ability``: the task family, as in verl's own preprocessing scripts
  (``examples/data_preprocess/gsm8k.py``, read at verl commit b178a3cd: the examples are not in the wheel).

``reward_model`` is ``{"style": "model", "ground_truth": <the chosen response>}``: a model scores the
rollouts, and the labelled winner is the reference a custom reward function may compare against.
``extra_info`` carries the sample id, the label's source and confidence, and ``p_wrong`` when the
snapshot has it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.training.data import load_preference_snapshot, user_turn
from models.training.external.openrlhf import write_text

VERL_VERSION = "0.9.1"
DATA_SOURCE = "juryflow"
ABILITY = "preference"
# Columns RLHFDataset and the reward path read (verl 0.9.1; see the module docstring).
PROMPT_KEY = "prompt"
COLUMNS = ("data_source", PROMPT_KEY, "ability", "reward_model", "extra_info")
EXTRA_INFO_COLUMNS = ("sample_id", "source", "confidence", "p_wrong")
PROMPTS_FILE = "train.parquet"


def verl_row(row: dict[str, Any], index: int) -> dict[str, Any]:
    extra = {"index": index, "split": "train"}
    extra.update({k: row[k] for k in EXTRA_INFO_COLUMNS if k in row})
    return {
        "data_source": DATA_SOURCE,
        PROMPT_KEY: user_turn(row["prompt"]),
        "ability": ABILITY,
        "reward_model": {"style": "model", "ground_truth": row["chosen"]},
        "extra_info": extra,
    }


def export_verl(snapshot_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write train.parquet (one row per snapshot row) and manifest.json; returns the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    rows = [verl_row(r, i) for i, r in enumerate(load_preference_snapshot(snapshot_dir, min_size=1).to_list())]
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (PROMPTS_FILE + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(out_dir / PROMPTS_FILE)
    manifest = {
        "engine": "verl",
        "verl_version": VERL_VERSION,
        "snapshot_id": snapshot_dir.name,
        "n_prompts": len(rows),
        "files": {"train": str(out_dir / PROMPTS_FILE)},
        "arguments": [f"data.train_files={out_dir / PROMPTS_FILE}", f"data.prompt_key={PROMPT_KEY}"],
    }
    write_text(out_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
