"""A short soak with faults (benchmarks/soak.py): the deployments of prefect.yaml on a real Prefect server
and process worker, a real Label Studio and a real PostgreSQL cluster, each SIGKILLed once and restarted;
nothing lost or duplicated, no run left in flight, the same snapshot as a fault-free run.

The soak starts and kills its own servers (never the session's), so it cannot share them.
"""

from __future__ import annotations

import random

import pytest

from benchmarks.soak import KINDS, plan_faults, shortened_automation, shortened_prefect_yaml, soak

SEED = 20261202


# It once ran opt-in: its drain timed out because a run killed with the worker after reporting Running,
# before its first heartbeat, stayed Running for good (automations/heartbeat.yaml now opens its window on
# Running too; tests/flows/test_automations.py drives that case exactly).
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.requires_labelstudio
@pytest.mark.requires_postgres
def test_short_soak_with_kills_loses_and_duplicates_nothing(tmp_path):
    # Its own servers (the soak kills them), addressed by URL: a session harness in this process is not used.
    result = soak(tmp_path / "soak", minutes=1.0, seed=SEED, samples_per_file=6, files=1, per_kind=1,
                  label_every_s=90, harvest_every_s=30, within_s=75, pause_s=(3.0, 8.0), drain_s=600)
    print(result)
    assert result["violations"] == []
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["kills"] == {kind: 1 for kind in KINDS}
    assert result["snapshot_equal"] and result["snapshot_rows"] > 0
    # The worker kill took a run with it, and the heartbeat automation marked it Crashed.
    assert result["runs_killed_with_worker"] >= 1 and result["killed_runs_left_in_flight"] == []
    assert result["crashed_by_heartbeat"] >= 1
    assert result["unrecovered_runs"] == []
    assert result["reconcile"]["unexplained"] == 0
    # Where the time went, in order (README, "Tests and benchmarks"): each phase ends after the one before it.
    phases = result["phases"]
    assert list(phases) == ["servers_up", "deployed", "faults_over", "all_labelled", "exported", "settled",
                            "fault_free_run_done"]
    assert list(phases.values()) == sorted(phases.values()) and phases["faults_over"] - phases["deployed"] >= 60


def test_faults_are_spread_so_one_kind_never_overlaps_itself():
    faults = plan_faults(random.Random(1), duration_s=1800, per_kind=8, pause_s=(5.0, 25.0))
    assert len(faults) == 24 and faults == sorted(faults)
    for kind in KINDS:
        mine = [f for f in faults if f.kind == kind]
        assert len(mine) == 8
        assert all(a.at_s + a.pause_s < b.at_s for a, b in zip(mine, mine[1:])), mine
    assert all(0 < f.at_s < 1800 and 0 < f.pause_s <= 25 for f in faults)


def test_shortened_copies_change_only_schedules_heartbeats_and_the_silence_window(tmp_path):
    import yaml

    from benchmarks._procs import REPO

    shipped = yaml.safe_load((REPO / "prefect.yaml").read_text())
    short = yaml.safe_load(shortened_prefect_yaml(tmp_path / "prefect.yaml", 30, 15).read_text())
    by_name = {d["name"]: d for d in short["deployments"]}
    assert by_name["label-batch"]["schedules"] == [{"interval": 30}]
    assert by_name["harvest-reviews"]["schedules"] == [{"interval": 15}]
    assert [d["name"] for d in short["deployments"]] == [d["name"] for d in shipped["deployments"]]
    for d, orig in zip(short["deployments"], shipped["deployments"]):
        assert d["entrypoint"] == orig["entrypoint"] and d["work_pool"]["name"] == orig["work_pool"]["name"]
        assert d["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
        assert d.get("triggers") == orig.get("triggers") and d["concurrency_limit"] == orig["concurrency_limit"]
    for name in ("heartbeat", "pending"):
        automation = shortened_automation(name, 75)
        assert automation["trigger"]["within"] == 75 and "75 s" in automation["actions"][0]["message"]
        assert automation["trigger"]["posture"] == "Proactive"
