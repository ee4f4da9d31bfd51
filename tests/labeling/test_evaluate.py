"""labeling/evaluate.py and `juryflow evaluate` (juryflow/cli_evaluate.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from labeling.evaluate import as_labels, auto_accepted, cost_quality_curves, final_agreement, fold_of, guarantee_splits

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`juryflow ...` in its own process, as a user runs it, against the test harness's Prefect API.

    A separate process also keeps Prefect's log handlers off CliRunner's short-lived streams.
    """
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "juryflow.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout, check=False)


def synthetic_scores(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """p_a whose confidence c is right with probability c (a calibrated labeler)."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    prefers_a = rng.uniform(0, 1, n) < 0.5
    right = rng.uniform(0, 1, n) < conf
    p_a = np.where(prefers_a == right, conf, 1 - conf)
    return [f"s{i}" for i in range(n)], p_a, prefers_a


def synthetic_report_inputs(n: int, seed: int):
    """Samples whose reference labels match synthetic_scores, and those scores."""
    from labeling.schemas import Sample

    ids, p_a, prefers_a = synthetic_scores(n, seed)
    samples = [Sample(sample_id=i, prompt="p", response_a="a", response_b="b", reference_label="A" if a else "B")
               for i, a in zip(ids, prefers_a, strict=True)]
    return samples, p_a


def test_replay_uses_routing_thresholds() -> None:
    labels = as_labels(["a", "b", "c"], np.array([0.95, 0.3, 0.6]))  # confidences 0.95, 0.7, 0.6
    assert auto_accepted(labels, 0.7).tolist() == [True, True, False]
    assert auto_accepted(labels, None).tolist() == [False, False, False]  # nothing qualified
    assert final_agreement(np.array([True, True, False]), np.array([True, False, False])) == pytest.approx(2 / 3)


def test_folds_are_stable_and_balanced() -> None:
    folds = [fold_of(f"id{i}", 5) for i in range(1000)]
    assert folds == [fold_of(f"id{i}", 5) for i in range(1000)]
    assert min(np.bincount(folds)) > 150


def test_guarantee_splits_hold_on_calibrated_stream() -> None:
    # A large test part (3000) keeps the test set's own sampling noise small: the guarantee is on
    # the stream's error rate, and a small test set's realised rate scatters around it.
    ids, p_a, prefers_a = synthetic_scores(4000, 0)
    res = guarantee_splits(ids, p_a, prefers_a, alpha=0.2, delta=0.1, n_splits=100, calibration_share=0.25,
                           min_calibration_size=100, method="isotonic")  # fmt: skip
    assert res["share_with_threshold"] > 0.9
    assert res["violation_rate"] <= 0.1 + 0.08  # delta, two binomial standard errors and the test noise
    assert 0.3 < res["mean_coverage"] < 0.8  # threshold near 0.6 on U(0.5, 1): ~80% at best
    assert res["mean_auto_agreement"] >= 0.78


def test_oracle_coverage_is_the_loosest_threshold_within_alpha_in_hindsight() -> None:
    from labeling.evaluate import oracle_coverage

    # Confidences 0.9 > 0.8 > 0.7 > 0.6 (ties at 0.6), right, right, wrong, wrong, right.
    p_a = np.array([0.9, 0.2, 0.7, 0.4, 0.6])
    prefers_a = np.array([True, False, False, True, True])
    assert oracle_coverage(p_a, prefers_a, alpha=0.34) == pytest.approx(0.6)  # 1/3 wrong at 0.7; ties at 0.6 give 2/5
    assert oracle_coverage(p_a, prefers_a, alpha=0.4) == pytest.approx(1.0)  # 2/5 wrong overall
    assert oracle_coverage(p_a, prefers_a, alpha=0.1) == pytest.approx(0.4)


def test_population_check_counts_violations_in_the_population_not_a_test_split() -> None:
    from labeling.evaluate import population_check

    ids, p_a, prefers_a = synthetic_scores(1200, 1)
    res = population_check(p_a, prefers_a, alpha=0.2, delta=0.1, n_draws=60, calibration_size=600,
                           min_calibration_size=100)  # fmt: skip
    assert res["population_violation_rate"] <= 0.1 + 0.08
    assert 0.3 < res["efficiency"] <= 1.05 and res["oracle_coverage"] > 0.5


def test_report_judges_validity_on_the_population_and_its_sweep_agrees_with_the_check(tmp_path) -> None:
    from labeling.evaluate import build_report

    samples, p_a = synthetic_report_inputs(400, 2)
    report = build_report(samples, p_a, alpha=0.2, delta=0.1, n_splits=10, calibration_share=0.5,
                          min_calibration_size=100, method="isotonic", out_dir=tmp_path)  # fmt: skip
    pop = report["population_check"]
    assert pop["n_draws"] == 10 and pop["calibration_size"] == 200 and pop["oracle_coverage"] > 0.5
    assert report["guarantee_holds"] == (pop["population_violation_rate"] <= 0.1 + 2 * (0.09 / 10) ** 0.5)
    at_alpha = [p for p in report["cost_quality"]["guaranteed"] if p["alpha"] == 0.2]
    assert at_alpha == [report["guarantee"]]  # the plotted point is the configured check itself


def test_out_of_fold_file_round_trips_and_bad_lines_are_named(tmp_path) -> None:
    from labeling.evaluate import read_out_of_fold, write_out_of_fold
    from labeling.schemas import Sample

    samples = [Sample(sample_id=f"s{i}", prompt="q", response_a="a", response_b="b", reference_label="AB"[i % 2])
               for i in range(4)]  # fmt: skip
    path = write_out_of_fold(tmp_path / "oof.jsonl", samples, np.array([0.9, 0.2, 1.0, 0.5]), "embedding")
    p_a, kind = read_out_of_fold(path, samples)
    assert p_a.tolist() == [0.9, 0.2, 1.0, 0.5] and kind == "embedding"
    lines = path.read_text().splitlines()
    for bad, message in [
        ('{"sample_id": "s1", "p_a": 1.5, "reference": "B"}', "line 2 (sample 's1'): field 'p_a'"),
        ("not json", "line 2 is not JSON"),
        ('{"p_a": 0.5}', "line 2: field 'sample_id'"),
    ]:
        (tmp_path / "bad.jsonl").write_text("\n".join([lines[0], bad, *lines[2:]]) + "\n")
        with pytest.raises(ValueError, match=re.escape(message)):
            read_out_of_fold(tmp_path / "bad.jsonl", samples)
    flipped = [s.model_copy(update={"reference_label": "B"}) if s.sample_id == "s0" else s for s in samples]
    with pytest.raises(ValueError, match="reference labels differ for 1 samples"):
        read_out_of_fold(path, flipped)


class _RecordingFit:
    """A fold fitter that remembers what each fold trained on; its labeler says p_a=1 for a seen sample."""

    def __init__(self) -> None:
        self.trained_on: list[set[str]] = []

    def __call__(self, train, fold_dir):
        seen = {s.sample_id for s in train}
        self.trained_on.append(seen)
        fit = self

        class FoldLabeler:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fit.closed = True

            def label(self, samples):
                return as_labels([s.sample_id for s in samples], np.array([1.0 if s.sample_id in seen else 0.25
                                                                             for s in samples]))

        return FoldLabeler()


def test_out_of_fold_never_labels_a_sample_with_a_labeler_that_saw_it(tmp_path) -> None:
    from labeling.evaluate import out_of_fold_p_a
    from labeling.schemas import Sample

    samples = [Sample(sample_id=f"s{i}", prompt="q", response_a="a", response_b="b", reference_label="AB"[i % 2])
               for i in range(40)]  # fmt: skip
    fit = _RecordingFit()
    p_a = out_of_fold_p_a(samples, 4, tmp_path, fit)
    assert p_a.tolist() == [0.25] * 40 and len(fit.trained_on) == 4 and fit.closed
    assert all(len(seen) < 40 for seen in fit.trained_on)
    with pytest.raises(ValueError, match="folds must be >= 2"):
        out_of_fold_p_a(samples, 1, tmp_path, fit)
    with pytest.raises(ValueError, match="need at least 8 for 4 folds"):
        out_of_fold_p_a(samples[:5], 4, tmp_path, fit)


def test_random_routing_curve_is_linear_in_human_share() -> None:
    ids, p_a, prefers_a = synthetic_scores(600, 1)
    curves = cost_quality_curves(ids, p_a, prefers_a)
    acc = float(np.mean((p_a >= 0.5) == prefers_a))
    for pt in curves["random"]:
        assert pt["agreement"] == pytest.approx(pt["human_share"] + (1 - pt["human_share"]) * acc, abs=0.02)
    # A confidence threshold beats random routing at the same human share (the labeler knows when it is right).
    mid = min(curves["fixed_threshold"], key=lambda p: abs(p["human_share"] - 0.5))
    assert mid["agreement"] > mid["human_share"] + (1 - mid["human_share"]) * acc


@pytest.mark.slow
def test_cli_evaluate_end_to_end(tmp_path, clean_env, prefect_harness) -> None:
    from labeling.synthetic import generate, write_jsonl

    data = write_jsonl(generate(300, seed=3, hard_fraction=0.3), tmp_path / "labeled.jsonl")
    out = tmp_path / "eval"
    result = run_cli("evaluate", "--data", str(data), "--folds", "3", "--splits", "30", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["n_samples"] == 300
    g = report["guarantee"]
    assert g["n_splits"] == 30 and g["alpha"] == 0.28
    assert g["share_with_threshold"] > 0.5 and g["mean_coverage"] > 0.3  # the signal is learnable
    assert g["violation_rate"] <= 0.1 + 0.15
    assert report["labeler_accuracy"]["top_30pct"] > 0.8
    curve = report["coverage_accuracy"]
    assert [p["coverage"] for p in curve][-1] == 1.0 and curve[0]["accuracy"] >= curve[-1]["accuracy"]
    for key in ("plot", "reliability_plot"):
        assert open(report[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert {"random", "fixed_threshold", "guaranteed"} <= set(report["cost_quality"])
    # The CLI ran the evaluate-routing flow, which published the report and plot as artifacts.
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = {r.id: r for r in client.read_flow_runs()}
        arts = [a for a in client.read_artifacts() if a.key in ("routing-evaluation", "routing-cost-quality")]
    ours = [a for a in arts if a.flow_run_id in runs and runs[a.flow_run_id].parameters.get("out") == str(out)]
    assert {a.key for a in ours} == {"routing-evaluation", "routing-cost-quality"}


@pytest.mark.slow
def test_cli_evaluate_with_cross_encoder_folds(tmp_path, clean_env, prefect_harness) -> None:
    """Each fold fine-tunes its own cross-encoder (RewardTrainer) and labels the unseen fold."""
    from labeling.synthetic import generate, write_jsonl
    from tests.models.training.conftest import RECIPES, write_recipe

    data = write_jsonl(generate(160, seed=4, hard_fraction=0.2), tmp_path / "labeled.jsonl")
    out = tmp_path / "eval"
    # One epoch per fold: top-half accuracy is already 1.0 out of fold (the same as the recipe's 3 epochs),
    # for 38 s of CPU instead of 59.
    recipe = write_recipe(RECIPES / "test" / "labeler_cross_encoder.yaml", tmp_path / "xenc.yaml",
                          training={"num_train_epochs": 1})
    args = ["evaluate", "--data", str(data), "--folds", "2", "--splits", "20", "--out", str(out),
            "--labeler", "cross-encoder", "--recipe", str(recipe)]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["labeler"] == "cross-encoder" and report["n_samples"] == 160
    assert report["labeler_accuracy"]["top_50pct"] >= 0.8  # learned out of fold, not memorised
    oof = [json.loads(line) for line in (out / "out_of_fold.jsonl").read_text().splitlines()]
    assert len(oof) == 160 and all(0.0 <= r["p_a"] <= 1.0 for r in oof)

    # --scores re-analyses the same out-of-fold p_a at another alpha without refitting.
    again = tmp_path / "again"
    args = ["evaluate", "--data", str(data), "--scores", str(out / "out_of_fold.jsonl"), "--alpha", "0.1",
            "--splits", "20", "--out", str(again)]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reusing out-of-fold p_a of the cross-encoder labeler" in result.stdout
    reused = json.loads((again / "report.json").read_text())
    assert reused["labeler_accuracy"] == report["labeler_accuracy"] and reused["guarantee"]["alpha"] == 0.1
    other = write_jsonl(generate(20, seed=9), tmp_path / "other.jsonl")
    result = run_cli("evaluate", "--data", str(other), "--scores", str(out / "out_of_fold.jsonl"))
    assert result.returncode == 2 and "no score for 20 samples" in result.stdout


def test_cli_evaluate_rejects_unknown_labeler(tmp_path) -> None:
    from juryflow.cli_evaluate import app

    root = typer.Typer()
    root.add_typer(app)
    result = CliRunner().invoke(root, ["evaluate", "--data", str(tmp_path), "--labeler", "bm25"])
    assert result.exit_code == 2 and "embedding, cross-encoder" in result.output


def test_cli_evaluate_missing_file(tmp_path) -> None:
    from juryflow.cli_evaluate import app

    root = typer.Typer()
    root.add_typer(app)
    result = CliRunner().invoke(root, ["evaluate", "--data", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.integration
def test_report_is_published_inside_a_flow(tmp_path, prefect_harness) -> None:
    from prefect import flow

    from labeling.evaluate import build_report
    from tasks.evaluation import publish_report_artifacts

    samples, p_a = synthetic_report_inputs(400, 2)
    report = build_report(samples, p_a, alpha=0.28, delta=0.1, n_splits=20, calibration_share=0.5,
                          min_calibration_size=100, method="temperature", out_dir=tmp_path)  # fmt: skip

    @flow
    def publish() -> bool:
        return publish_report_artifacts(report)

    assert publish() is True
    assert publish_report_artifacts(report) is False  # outside a flow: nothing to attach to
