from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from juryflow.cli_labeler import app
from labeling.synthetic import generate, write_jsonl


def test_fit_writes_a_head_and_says_how_to_use_it(juryflow_env: Path) -> None:
    data = write_jsonl(generate(120, seed=5), juryflow_env / "pairs.jsonl")
    out = juryflow_env / "head"
    args = ["fit", "--data", str(data), "--limit", "100", "--out", str(out)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    spec = json.loads((out / "embedding_head.json").read_text())
    assert spec["fit"]["n_train"] + spec["fit"]["n_eval"] == 100
    assert "held out" in result.output and "JURYFLOW__LABELER__MODEL_PATH=" in result.output
    shown = CliRunner().invoke(app, ["show", str(out)], terminal_width=200)
    assert shown.exit_code == 0 and "eval_accuracy" in shown.output


def test_fit_needs_a_source(juryflow_env: Path) -> None:
    result = CliRunner().invoke(app, ["fit"])
    assert result.exit_code == 2 and "--data" in result.output


def test_fit_from_store_uses_human_labels_only(juryflow_env: Path) -> None:
    from labeling.ingest import RawRecord, parse_records
    from labeling.schemas import FinalLabel, LabelSource, Route, RouteReason
    from labeling.settings import load_settings
    from labeling.store import Store

    records = [RawRecord(source="syn", row=i, data=row) for i, row in enumerate(generate(40, seed=9))]
    samples, _ = parse_records(records, load_settings().ingest)
    store = Store.from_settings(load_settings())
    store.add_samples(samples, source="syn")
    store.record_routes(
        [Route(sample_id=s.sample_id, to_judge=False, to_human=True, reasons=[RouteReason.cold_start])
         for s in samples],
        stage="labeler",
    )
    # 30 human labels train the head; 10 judge labels must not.
    store.record_final_labels(
        [FinalLabel(sample_id=s.sample_id, preferred=s.reference_label,
                    source=LabelSource.human if i < 30 else LabelSource.judge) for i, s in enumerate(samples)]
    )
    out = juryflow_env / "head"
    result = CliRunner().invoke(app, ["fit", "--from-store", "--holdout", "0", "--out", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "embedding_head.json").read_text())["fit"]["n_train"] == 30


@pytest.mark.slow
def test_fit_cross_encoder_trains_a_reward_model_labeler(juryflow_env: Path) -> None:
    from tests.models.training.conftest import RECIPES, write_recipe

    data = write_jsonl(generate(150, seed=6), juryflow_env / "pairs.jsonl")
    out = juryflow_env / "xenc"
    # One epoch learns these pairs (the recipe's 3 are for smaller sets) at a third of the CPU.
    recipe = write_recipe(RECIPES / "test" / "labeler_cross_encoder.yaml", juryflow_env / "xenc.yaml",
                          training={"num_train_epochs": 1})
    args = ["fit", "--kind", "cross-encoder", "--data", str(data), "--out", str(out), "--recipe", str(recipe)]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (out / "config.json").is_file() and "backend: reward_model" in result.output
    held = re.search(r"held out (\d+) pairs: accuracy ([0-9.]+)", result.output)
    assert held and int(held.group(1)) > 10 and float(held.group(2)) >= 0.8, result.output


def test_fit_rejects_an_unknown_kind(juryflow_env: Path) -> None:
    data = write_jsonl(generate(20, seed=5), juryflow_env / "pairs.jsonl")
    result = CliRunner().invoke(app, ["fit", "--data", str(data), "--kind", "svm"])
    assert result.exit_code == 2 and "embedding or cross-encoder" in result.output
