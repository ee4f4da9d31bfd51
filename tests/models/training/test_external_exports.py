"""``export-for openrlhf|verl``: the files hold the keys the pinned engines read, and read back as those engines read them.

The readers below restate, line for line, the pinned releases' own reading code (cited at each):
OpenRLHF and verl need a GPU stack to import, so their functions are not called here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juryflow.cli import app
from models.training.external import openrlhf, verl
from models.training.external.handoff import export_snapshot_for
from tests.models.training.synthetic import preference_rows, write_snapshot


@pytest.fixture()
def snapshot(tmp_path: Path) -> tuple[Path, str, list[dict]]:
    rows = preference_rows(12, seed=3)
    rows[1]["prompt"] = rows[0]["prompt"]  # a repeated prompt: one PPO prompt, two preference pairs
    snapshot_id = write_snapshot(tmp_path / "data" / "snapshots", rows)
    return tmp_path / "data", snapshot_id, rows


def _with_p_wrong(data_dir: Path, snapshot_id: str, rows: list[dict]) -> None:
    """Rewrite the snapshot with the p_wrong column a later export adds (H8), one row without a value."""
    from datasets import Dataset

    path = data_dir / "snapshots" / snapshot_id
    values = [None if i == 2 else round(0.01 * i, 3) for i in range(len(rows))]
    Dataset.from_list([{**r, "p_wrong": v} for r, v in zip(rows, values, strict=True)]).save_to_disk(str(path / "dataset2"))
    (path / "dataset").rename(path / "dataset-old")
    (path / "dataset2").rename(path / "dataset")


def _openrlhf_reward_dataset_row(data: dict, tokenizer) -> tuple[str, str, str]:
    # openrlhf 0.11.2 openrlhf/datasets/reward_dataset.py::preprocess_data, with apply_chat_template and prompt_key.
    key_prompt, key_chosen, key_rejected = openrlhf.PREFERENCE_PROMPT_KEY, openrlhf.PREFERENCE_CHOSEN_KEY, openrlhf.PREFERENCE_REJECTED_KEY
    prompt = tokenizer.apply_chat_template(data[key_prompt], tokenize=False, add_generation_prompt=True)
    chosen = tokenizer.apply_chat_template(data[key_prompt] + data[key_chosen], tokenize=False)[len(prompt):]
    rejected = tokenizer.apply_chat_template(data[key_prompt] + data[key_rejected], tokenize=False)[len(prompt):]
    return prompt, chosen, rejected


def test_openrlhf_export_reads_back_as_openrlhf_reads_it(snapshot, tmp_path: Path) -> None:
    from datasets import load_dataset

    from models.tiny import build_tokenizer

    data_dir, snapshot_id, rows = snapshot
    _with_p_wrong(data_dir, snapshot_id, rows)
    manifest = export_snapshot_for("openrlhf", data_dir, snapshot_id)
    # openrlhf/datasets/utils.py::blending_datasets: a local .jsonl is load_dataset("json", data_files=...).
    pairs = load_dataset("json", data_files=manifest["files"]["preferences"])["train"]
    prompts = load_dataset("json", data_files=manifest["files"]["prompts"])["train"]
    unique_prompts = list(dict.fromkeys(r["prompt"] for r in rows))
    assert len(pairs) == len(rows) and len(prompts) == len(unique_prompts) == manifest["n_prompts"]

    tokenizer = build_tokenizer(tmp_path / "tokenizer")  # the tiny models' tokenizer: it has a chat template
    prompt, chosen, rejected = _openrlhf_reward_dataset_row(pairs[5], tokenizer)
    assert rows[5]["prompt"] in prompt and chosen.startswith(rows[5]["chosen"]) and rejected.startswith(rows[5]["rejected"])
    assert pairs["sample_id"] == [r["sample_id"] for r in rows]
    assert pairs["p_wrong"][:3] == [0.0, 0.01, None]  # carried as an extra column, which OpenRLHF ignores

    # openrlhf/datasets/prompts_dataset.py::preprocess_data: data[input_key] (chat), data[label_key].
    first = prompts[0]
    assert first[openrlhf.PPO_INPUT_KEY] == [{"role": "user", "content": unique_prompts[0]}]
    assert first[openrlhf.PPO_LABEL_KEY] == unique_prompts[0] and prompts["label"] == unique_prompts
    assert manifest["arguments"]["openrlhf.cli.train_ppo_ray"][:4] == ["--data.input_key", "prompt", "--data.label_key", "label"]


def test_openrlhf_export_is_idempotent(snapshot) -> None:
    data_dir, snapshot_id, _ = snapshot
    first = export_snapshot_for("openrlhf", data_dir, snapshot_id)
    before = {p: Path(p).read_bytes() for p in first["files"].values()}
    second = export_snapshot_for("openrlhf", data_dir, snapshot_id)
    assert first == second and before == {p: Path(p).read_bytes() for p in second["files"].values()}


def test_verl_export_has_the_columns_rlhf_dataset_reads(snapshot) -> None:
    from datasets import load_dataset

    data_dir, snapshot_id, rows = snapshot
    _with_p_wrong(data_dir, snapshot_id, rows)
    manifest = export_snapshot_for("verl", data_dir, snapshot_id)
    # verl 0.9.1 verl/utils/dataset/rl_dataset.py reads parquet files with datasets' "parquet" loader.
    table = load_dataset("parquet", data_files=manifest["files"]["train"])["train"]
    assert table.column_names == list(verl.COLUMNS) and len(table) == len(rows)
    row = table[4]
    assert row[verl.PROMPT_KEY] == [{"role": "user", "content": rows[4]["prompt"]}]  # config.prompt_key default
    assert row["data_source"] == "juryflow" and row["ability"] == "preference"
    assert row["reward_model"] == {"style": "model", "ground_truth": rows[4]["chosen"]}
    assert row["extra_info"]["index"] == 4 and row["extra_info"]["sample_id"] == rows[4]["sample_id"]
    assert [r["p_wrong"] for r in table["extra_info"][:3]] == [0.0, 0.01, None]


def test_export_for_cli_writes_and_refuses_in_one_line(snapshot, clean_env) -> None:
    data_dir, snapshot_id, _ = snapshot
    clean_env.setenv("JURYFLOW__DATA_DIR", str(data_dir))
    ok = CliRunner().invoke(app, ["models", "export-for", "verl", snapshot_id], terminal_width=200)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["n_prompts"] == 12
    for args, expected in ((["nosuch", snapshot_id], "engine 'nosuch'"), (["openrlhf", "missing"], "no snapshot 'missing'")):
        result = CliRunner().invoke(app, ["models", "export-for", *args], terminal_width=200)
        assert result.exit_code == 2 and expected in result.output and "Traceback" not in result.output, result.output
