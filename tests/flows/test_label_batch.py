"""label_batch under a real Prefect API, with tiny local models and a real SQLite store."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

pytestmark = [pytest.mark.integration]


def store_contents(data_dir) -> dict[str, list]:
    """Every row of every table, without timestamps, in a stable order."""
    from labeling import store as store_module
    from labeling.store import Store

    st = Store(f"sqlite:///{data_dir / 'juryflow.db'}")
    out = {}
    with st._engine.connect() as conn:
        for table in store_module.md.sorted_tables:
            cols = [c for c in table.columns if c.name not in {"updated_at", "created_at"}]
            rows = conn.execute(select(*cols)).all()
            out[table.name] = sorted(json.dumps([*r], sort_keys=True, default=str) for r in rows)
    st.close()
    return out


def write_input(tmp_path, n=120, seed=3):
    from labeling.synthetic import generate, write_jsonl

    rows = generate(n, seed=seed)
    rows.append({"sample_id": "broken", "prompt": "hi", "response_a": "same", "response_b": "same"})
    return write_jsonl(rows, tmp_path / "input.jsonl")


def test_label_batch_routes_judges_merges_and_exports(prefect_harness, pipeline_env):
    from labeling.export import load_snapshot

    from flows.label_batch import label_batch
    from labeling.settings import load_settings
    from labeling.store import Store

    summary = label_batch(str(write_input(pipeline_env)))
    st = Store.from_settings(load_settings())
    states = st.count_by_state()
    assert sum(states.values()) == 120  # a rejected row never becomes a sample
    assert summary["ingested"]["quarantined"] == 1  # the identical-responses row
    assert "identical" in st.list_quarantine()[0].reason
    assert summary["ai_labeled"] == 120
    # Every valid sample ended up accepted or waiting for a human, with a recorded reason.
    assert states.get("labeled", 0) + states.get("human_pending", 0) == 120
    assert summary["route_reasons"], "route reasons are recorded"
    # The tiny random judge only has position bias, so its verdicts flip under the A/B swap
    # and routing sends them to humans instead of trusting them.
    assert summary["judge_outcomes"].get("swap_inconsistent", 0) > 0
    assert summary["judge_accepted"] == states.get("labeled", 0)
    ds = load_snapshot(summary["snapshot_path"])
    assert ds.num_rows == states.get("labeled", 0)
    assert {"prompt", "chosen", "rejected", "source", "labeler_version", "judge_version"} <= set(ds.column_names)


class AgreeingJudge:
    """A judge that always agrees with the reference label in both orders: exercises the accept path."""

    name, version = "agreeing", "agree-v1"

    def __init__(self, store):
        self.store = store

    def judge(self, samples, constitution):
        from labeling.schemas import JudgeVerdict

        out = []
        for s in samples:
            p = 0.9 if s.reference_label == "A" else 0.1
            out.append(JudgeVerdict(sample_id=s.sample_id, p_a_original=p, p_a_swapped=p, model="agree", version="agree-v1"))
        return out


def test_judge_agreement_is_accepted_and_exported_with_provenance(prefect_harness, pipeline_env, monkeypatch):
    from labeling.export import load_snapshot

    from flows.label_batch import label_batch
    from labeling.settings import load_settings
    from labeling.store import Store
    from tasks import resources

    monkeypatch.setattr(resources, "judge", lambda cfg, critique=None: AgreeingJudge(None))
    summary = label_batch(str(write_input(pipeline_env)))
    st = Store.from_settings(load_settings())
    finals = st.get_final_labels()
    assert summary["judge_accepted"] > 0 and summary["judge_accepted"] == len(finals)
    judged = [f for f in finals.values() if f.source == "judge"]
    assert judged and all(f.judge_version == "agree-v1" and f.labeler_version for f in judged)
    # Only samples where labeler and judge agree were accepted, and audited ones went to humans.
    routes = st.get_routes(list(finals))
    assert all(r["judge"].accept_judge and "audit" not in r["judge"].reasons for r in routes.values())
    ds = load_snapshot(summary["snapshot_path"])
    assert ds.num_rows == len(finals) and set(ds["source"]) == {"judge"}


def test_running_the_same_input_twice_changes_nothing(prefect_harness, pipeline_env):
    from flows.label_batch import label_batch

    path = write_input(pipeline_env)
    label_batch(str(path))
    first = store_contents(pipeline_env / "data")
    label_batch(str(path))
    assert store_contents(pipeline_env / "data") == first


def test_crash_between_tasks_then_rerun_loses_nothing(prefect_harness, pipeline_env, monkeypatch, tmp_path_factory):
    from prefect import task

    import flows.label_batch as module
    from tasks import resources

    path = write_input(pipeline_env)

    @task(name="judge-and-merge")
    def crashing_judge(sample_ids, critique=None):
        raise RuntimeError("injected crash between tasks")

    real_judge = module.judge_and_merge
    monkeypatch.setattr(module, "judge_and_merge", crashing_judge)
    with pytest.raises(RuntimeError, match="injected crash"):
        module.label_batch(str(path))
    crashed = store_contents(pipeline_env / "data")
    assert crashed["ai_labels"] and not crashed["final_labels"], "the crash hit after labeling, before merging"

    monkeypatch.setattr(module, "judge_and_merge", real_judge)
    module.label_batch(str(path))
    recovered = store_contents(pipeline_env / "data")

    # A clean run on the same input in a fresh data dir must give the same store.
    clean_dir = tmp_path_factory.mktemp("clean")
    monkeypatch.setenv("JURYFLOW__DATA_DIR", str(clean_dir / "data"))
    resources.release_models()
    module.label_batch(str(path))
    clean = store_contents(clean_dir / "data")
    for table in ("samples", "ai_labels", "routes", "judge_verdicts", "final_labels", "quarantine"):
        strip = (lambda rows: rows) if table != "quarantine" else (lambda rows: sorted(r.split(",", 1)[1] for r in rows))
        assert strip(recovered[table]) == strip(clean[table]), table


def test_cold_start_sends_everything_to_humans_then_import_labels_them(prefect_harness, juryflow_env):
    from typer.testing import CliRunner

    from flows.label_batch import label_batch
    from juryflow.cli import app
    from labeling.schemas import SampleState
    from labeling.settings import load_settings
    from labeling.store import Store

    summary = label_batch(str(write_input(juryflow_env, n=20)))
    st = Store.from_settings(load_settings())
    pending = st.ids_in_state(SampleState.human_pending)
    assert len(pending) == 20 and summary["ai_labeled"] == 0

    status = CliRunner().invoke(app, ["status"])
    assert "cold start" in status.output

    answers = juryflow_env / "answers.jsonl"
    lines = [{"sample_id": sid, "choice": "A", "annotator": "ann1"} for sid in pending[:15]]
    lines.append({"sample_id": "no-such-sample", "choice": "A"})
    lines.append({"sample_id": pending[15], "choice": "maybe"})
    answers.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    for _ in range(2):  # importing twice must not duplicate anything
        result = CliRunner().invoke(app, ["human", "import", str(answers)])
        assert result.exit_code == 0, result.output
    assert "no-such-sample" in result.output and "choice" in result.output
    finals = st.get_final_labels()
    assert len(finals) == 15 and all(f.source == "human" for f in finals.values())
    assert len([hl for labels in st.get_human_labels(pending).values() for hl in labels]) == 15


def test_escalated_samples_carry_a_reviewer_critique(prefect_harness, pipeline_env, monkeypatch):
    from flows.label_batch import label_batch
    from labeling.settings import load_settings
    from labeling.store import Store

    from labeling.schemas import SampleState

    monkeypatch.setenv("JURYFLOW__JUDGE__CRITIQUE_ESCALATED", "true")
    label_batch(str(write_input(pipeline_env, n=24)))
    st = Store.from_settings(load_settings())
    routes = st.get_routes(st.ids_in_state(SampleState.human_pending))
    judged_then_escalated = [sid for sid, r in routes.items() if "judge" in r]
    assert judged_then_escalated
    verdicts = st.get_verdicts(judged_then_escalated)
    # The deciding (verdict-mode) verdict is kept; the tiny random model writes no parseable
    # critique, and the reviewer is told so rather than shown a guess.
    assert all(v.critique and v.critique.startswith("(no usable critique: critique:") for v in verdicts.values())
    assert all(v.parse_error is None or "critique" not in v.parse_error for v in verdicts.values())
