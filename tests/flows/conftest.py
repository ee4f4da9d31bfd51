"""Fixtures for flow tests: a tiny judge model and a fitted embedding labeler, built once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    from models.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-judge"))


@pytest.fixture(scope="session")
def fitted_head_dir(tmp_path_factory):
    from labeling.ingest import load_records, parse_records
    from labeling.settings import IngestSettings
    from labeling.synthetic import generate, write_jsonl
    from models.labelers.embedding import fit_embedding_head

    work = tmp_path_factory.mktemp("head")
    path = write_jsonl(generate(200, seed=7), work / "fit.jsonl")
    samples, _ = parse_records(load_records(path), IngestSettings())
    out = work / "head"
    fit_embedding_head(samples, [s.reference_label for s in samples], out)
    return out


@pytest.fixture
def pipeline_env(juryflow_env, monkeypatch, tiny_judge_dir, fitted_head_dir):
    monkeypatch.setenv("JURYFLOW__JUDGE__MODEL_PATH", str(tiny_judge_dir))
    monkeypatch.setenv("JURYFLOW__LABELER__MODEL_PATH", str(fitted_head_dir))
    monkeypatch.setenv("JURYFLOW__INGEST__BATCH_SIZE", "64")  # several chunks per stage
    monkeypatch.setenv("JURYFLOW__ROUTING__AUDIT_RATE", "0.1")
    return juryflow_env
