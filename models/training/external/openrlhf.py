"""A snapshot as OpenRLHF's datasets: preference pairs for its reward-model and DPO trainers, prompts for PPO.

OpenRLHF (pinned: openrlhf==0.11.2, the PyPI wheel) reads local ``.jsonl`` files with
``datasets.load_dataset("json")`` (``openrlhf/datasets/utils.py``, ``blending_datasets``).
Every key below is one its readers take, as read from that release:

- reward model and DPO (``train_rm.py`` and ``train_dpo.py`` both build
  ``openrlhf/datasets/reward_dataset.py::RewardDataset``): with ``--data.apply_chat_template``
  and ``--data.prompt_key``, ``prompt`` is a list of chat messages and ``chosen`` / ``rejected``
  are the assistant turns appended to it (``preprocess_data``); so one file serves both trainers.
- PPO (``train_ppo_ray.py`` builds ``openrlhf/datasets/prompts_dataset.py::PromptDataset``):
  ``--data.input_key`` names the chat messages; ``--data.label_key`` names a value handed, per
  prompt, to the remote reward model as ``labels`` (``openrlhf/utils/agent.py``,
  ``SingleTurnAgentExecutor._fetch_rewards_via_http``). juryflow puts the plain prompt text
  there, so the reward server scores (prompt, response) exactly as the reward model was trained.

Extra columns (sample_id, source, confidence, p_wrong) ride along: OpenRLHF reads only the keys
it is told, and they keep each row traceable to the labels it came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.training.data import assistant_turn, load_preference_snapshot, user_turn

OPENRLHF_VERSION = "0.11.2"

# RewardDataset keys (openrlhf 0.11.2, openrlhf/datasets/reward_dataset.py; train_rm.py and
# train_dpo.py default chosen_key="chosen", rejected_key="rejected", prompt_key=None).
PREFERENCE_PROMPT_KEY = "prompt"
PREFERENCE_CHOSEN_KEY = "chosen"
PREFERENCE_REJECTED_KEY = "rejected"
# PromptDataset keys (openrlhf 0.11.2, openrlhf/datasets/prompts_dataset.py; train_ppo_ray.py
# defaults input_key="input", label_key=None, so the launch command names both).
PPO_INPUT_KEY = "prompt"
PPO_LABEL_KEY = "label"

PREFERENCES_FILE = "preferences.jsonl"
PROMPTS_FILE = "prompts.jsonl"
MANIFEST_FILE = "manifest.json"
TRACE_COLUMNS = ("sample_id", "source", "confidence", "p_wrong")


def preference_row(row: dict[str, Any]) -> dict[str, Any]:
    """One snapshot row as a RewardDataset row: chat messages plus the provenance columns."""
    out: dict[str, Any] = {
        PREFERENCE_PROMPT_KEY: user_turn(row["prompt"]),
        PREFERENCE_CHOSEN_KEY: assistant_turn(row["chosen"]),
        PREFERENCE_REJECTED_KEY: assistant_turn(row["rejected"]),
    }
    out.update({k: row[k] for k in TRACE_COLUMNS if k in row})
    return out


def prompt_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unique prompts, first occurrence first, as PromptDataset rows (the label is the plain prompt)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["prompt"], {PPO_INPUT_KEY: user_turn(row["prompt"]),
                                        PPO_LABEL_KEY: row["prompt"], "sample_id": row["sample_id"]})
    return list(seen.values())


def trainer_arguments() -> dict[str, list[str]]:
    """The OpenRLHF options that point each trainer at these files' keys (file paths are added by the caller)."""
    preference = ["--data.prompt_key", PREFERENCE_PROMPT_KEY, "--data.chosen_key", PREFERENCE_CHOSEN_KEY,
                  "--data.rejected_key", PREFERENCE_REJECTED_KEY, "--data.apply_chat_template"]
    return {
        "openrlhf.cli.train_rm": preference,
        "openrlhf.cli.train_dpo": preference,
        "openrlhf.cli.train_ppo_ray": ["--data.input_key", PPO_INPUT_KEY, "--data.label_key", PPO_LABEL_KEY,
                                       "--data.apply_chat_template"],
    }


def export_openrlhf(snapshot_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Write preferences.jsonl, prompts.jsonl and manifest.json; the same snapshot gives the same bytes."""
    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    rows = load_preference_snapshot(snapshot_dir, min_size=1).to_list()
    prompts = prompt_rows(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / PREFERENCES_FILE, [preference_row(r) for r in rows])
    write_jsonl(out_dir / PROMPTS_FILE, prompts)
    manifest = {
        "engine": "openrlhf",
        "openrlhf_version": OPENRLHF_VERSION,
        "snapshot_id": snapshot_dir.name,
        "n_preferences": len(rows),
        "n_prompts": len(prompts),
        "files": {"preferences": str(out_dir / PREFERENCES_FILE), "prompts": str(out_dir / PROMPTS_FILE)},
        "arguments": trainer_arguments(),
    }
    write_text(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows))


def write_text(path: Path, text: str) -> None:
    """Written to a temporary file and renamed, so a reader (or a rerun) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
