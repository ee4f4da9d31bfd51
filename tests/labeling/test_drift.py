"""labeling/drift.py: fires on a degrading labeler, stays quiet on a stable one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labeling.drift import check_drift, first_alarm

ALPHA = 0.2


def audits(error_rates: list[tuple[int, float]], seed: int) -> list[bool]:
    rng = np.random.default_rng(seed)
    out: list[bool] = []
    for n, err in error_rates:
        out.extend(bool(x) for x in rng.uniform(0, 1, n) >= err)
    return out


def test_fires_when_labeler_degrades_partway() -> None:
    fired_at = []
    for seed in range(20):
        stream = audits([(300, 0.12), (300, 0.40)], seed)  # degrades after 300 audits
        fired_at.append(first_alarm(stream, ALPHA, batch_size=50))
    assert all(b is not None for b in fired_at)
    assert all(b >= 6 for b in fired_at)  # never before the change (batches 0-5 are stable)


def test_quiet_on_stable_labeler() -> None:
    quiet = sum(first_alarm(audits([(600, 0.15)], seed), ALPHA, batch_size=50) is None for seed in range(20))
    assert quiet >= 19


def test_check_drift_message_and_empty() -> None:
    res = check_drift([False] * 30 + [True] * 20, ALPHA)
    assert res.fired and "30/50" in res.message and res.p_value < 0.01
    assert not check_drift([], ALPHA).fired


# -- the recalibrate flow end to end: real store (SQLite), real Prefect ------------------------


def _seed_audits(store, start: int, n: int, error_rate: float, seed: int) -> None:
    """n audited samples whose labeler is right with probability 1 - error_rate, confidently."""
    from labeling.merge import finalize_human_reviews
    from labeling.schemas import AILabel, HumanLabel, Route, RouteReason, Sample

    rng = np.random.default_rng(seed)
    ids = [f"s{start + i:05d}" for i in range(n)]
    store.add_samples([Sample(sample_id=s, prompt=f"q {s}", response_a="a", response_b="b") for s in ids], source="t")
    p_a = rng.uniform(0.85, 0.99, n)
    store.record_ai_labels(
        [
            AILabel(sample_id=s, p_a=float(p), labeler_name="t", labeler_version="v1")
            for s, p in zip(ids, p_a, strict=True)
        ]
    )
    store.record_routes(
        [
            Route(sample_id=s, to_judge=True, to_human=True, reasons=[RouteReason.high_confidence, RouteReason.audit])
            for s in ids
        ],
        stage="labeler",
    )
    wrong = rng.uniform(0, 1, n) < error_rate
    store.record_human_labels(
        [
            HumanLabel(sample_id=s, annotation_id=f"ann-{s}", annotator="h", choice="B" if w else "A")
            for s, w in zip(ids, wrong, strict=True)
        ]
    )
    finalize_human_reviews(store, ids, max_annotators=1)  # what harvest / `human import` do


@pytest.mark.integration
def test_recalibrate_flow_fits_then_raises_drift(juryflow_env, prefect_harness, monkeypatch) -> None:
    from flows.recalibrate import recalibrate
    from labeling.records import list_drift_alarms
    from labeling.records import read_active_thresholds as load_active_thresholds
    from tasks import resources

    def latest_drift_alarm(store):
        alarms = list_drift_alarms(store)
        return alarms[-1].model_dump() if alarms else None

    monkeypatch.setenv("JURYFLOW__ROUTING__ALPHA", "0.2")
    store = resources.store()
    assert load_active_thresholds(store) is None

    _seed_audits(store, 0, 300, error_rate=0.08, seed=0)
    first = recalibrate()
    assert not first["drift"]["fired"]
    active = load_active_thresholds(store)
    assert active is not None and active.labeler_threshold is not None and not active.drift
    assert first["thresholds"]["ece_raw"] is not None
    assert Path(first["thresholds"]["reliability_plot"]).is_file()
    assert store.get_record("thresholds", active.version) is not None
    # ECE and the reliability diagram are in `juryflow status` too, not only in artifacts.
    from labeling.settings import load_settings
    from labeling.status import collect_status

    note = next(n for n in collect_status(load_settings(), store)["notes"] if n.startswith("calibration ("))
    assert "300 audit labels" in note and f"ECE raw {first['thresholds']['ece_raw']:.3f}" in note
    assert note.endswith(f"reliability diagram {first['thresholds']['reliability_plot']}")

    _seed_audits(store, 300, 150, error_rate=0.45, seed=1)  # the labeler degrades
    second = recalibrate()
    assert second["drift"]["fired"]
    alarm = latest_drift_alarm(store)
    assert alarm is not None and alarm["thresholds_version"] == active.version
    after = load_active_thresholds(store)
    # Refit on the fresh audits only: at 45% errors nothing qualifies, so everything routes onward.
    assert after.drift and after.labeler_threshold is None
    assert "DRIFT" in after.status
