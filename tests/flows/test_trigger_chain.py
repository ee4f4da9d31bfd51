"""The deployed trigger chain on a real Prefect server: labels ready -> train-reward-model -> promoted
-> finetune-policy. Deploys prefect.yaml as shipped (`prefect --no-prompt deploy --all`), runs a process
worker on the GPU pool, emits the event the way label_batch's task does, and waits for the runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")



EMIT_SCRIPT = """
import sys
from pathlib import Path
from prefect import flow
from labeling.export import Snapshot
from labeling.settings import load_settings
from tasks.events import emit_labels_ready

snapshot_id, n_rows = sys.argv[1], int(sys.argv[2])
path = Path(load_settings().data_dir) / "snapshots" / snapshot_id

@flow(name="emit-labels-ready-test")
def emit():
    return emit_labels_ready(Snapshot(snapshot_id=snapshot_id, path=path, n_rows=n_rows, counts_by_source={},
                                      created_at="2026-01-01T00:00:00+00:00"))

assert emit()["emitted"] is True
"""


def _wait_until(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def chain_env(tmp_path, monkeypatch, prefect_server):
    """Environment shared by this process and the worker, on the session's `prefect server start`."""
    from models.tiny import build_tiny_reward_model
    from tests.models.training.synthetic import corpus

    base_rm = build_tiny_reward_model(tmp_path / "base-rm", corpus(), hidden_size=64, layers=2)
    recipe = tmp_path / "rm.yaml"
    recipe.write_text((REPO / "recipes" / "test" / "reward_model.yaml").read_text()
                      .replace("model_name_or_path: null", f"model_name_or_path: {base_rm}"))
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": prefect_server["api_url"],
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "JURYFLOW_HOME": str(REPO),
        "JURYFLOW_CONFIG": str(tmp_path / "absent.yaml"),
        "JURYFLOW__DATA_DIR": str(tmp_path / "data"),
        "JURYFLOW__TRAINING__TRIGGER_MIN_NEW_LABELS": "50",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    return {"env": {**os.environ, **env}, "recipe": str(recipe), "tmp": tmp_path}


def _run(args, env, cwd=REPO, timeout=180):
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.integration
@pytest.mark.slow
def test_labels_ready_event_trains_and_promotes(chain_env):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # A session harness from other tests may own this process's API URL: point it at our server.
    with temporary_settings({PREFECT_API_URL: chain_env["env"]["PREFECT_API_URL"]}):
        _chain(chain_env)


def _chain(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.objects import StateType

    from tests.models.training.synthetic import preference_rows, write_snapshot

    env, tmp = prefect_server["env"], prefect_server["tmp"]
    for pool in ("juryflow-cpu", "juryflow-gpu"):
        _run([PREFECT, "work-pool", "create", pool, "--type", "process"], env)
    _run([PREFECT, "--no-prompt", "deploy", "--all"], env)
    _run([PREFECT, "automation", "create", "--from-file", str(REPO / "automations" / "heartbeat.yaml")], env)

    # The shipped default recipe is a GPU one; point the deployed default at the tiny CPU recipe.
    with get_client(sync_client=True) as client:
        from prefect.client.schemas.actions import DeploymentUpdate

        deployment = client.read_deployment_by_name("train-reward-model/train-reward-model")
        client.update_deployment(deployment.id, DeploymentUpdate(parameters={"recipe": prefect_server["recipe"]}))

    worker_log = open(tmp / "worker.log", "w")  # noqa: SIM115 - closed below
    # Its own process group: the worker starts flow runs as child processes, and all must go at the end.
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "juryflow-gpu", "--type", "process"],
                              env=env, cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        snapshot_id = write_snapshot(Path(env["JURYFLOW__DATA_DIR"]) / "snapshots", preference_rows(300))
        # Emit from a fresh process, as label_batch's task does in a worker: this test process may hold
        # an events client bound to another test's Prefect server.
        _run([sys.executable, "-c", EMIT_SCRIPT, snapshot_id, "300"], env)

        def runs_of(name):
            with get_client(sync_client=True) as client:
                return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])))

        def finished_training():
            runs = runs_of("train-reward-model")
            return runs if runs and runs[0].state and runs[0].state.is_final() else None

        try:
            runs = _wait_until(finished_training, 150, "the triggered train-reward-model run to finish", 2)
        except TimeoutError:
            pytest.fail(f"no finished run; worker log:\n{(tmp / 'worker.log').read_text()[-4000:]}")
        assert len(runs) == 1 and runs[0].parameters["snapshot_id"] == snapshot_id
        assert runs[0].state.type == StateType.COMPLETED, (tmp / "worker.log").read_text()[-4000:]

        # The promotion event triggers finetune-policy with the promoted version.
        from models.training.registry import Registry

        promoted = [r for r in Registry(Path(env["JURYFLOW__DATA_DIR"]) / "registry").list("reward_model")]
        assert len(promoted) == 1 and promoted[0].status == "promoted"
        follow = _wait_until(lambda: runs_of("finetune-policy"), 30, "the finetune-policy run the promotion triggers")
        assert follow[0].parameters["reward_model_version"] == promoted[0].version
    finally:
        # A worker told to stop may still pick up the finetune-policy run the promotion queued and
        # wait for it; the test is done with both, so a graceful stop gets 30 s, then the group is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # the worker, or flow runs it left behind
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        worker_log.close()


def test_prefect_yaml_shares_pools_and_limits_training():
    import yaml

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == {"label-batch", "label-batch-dask", "harvest-reviews", "recalibrate", "train-reward-model",
                            "finetune-policy", "evaluate-routing"}
    for name in ("train-reward-model", "finetune-policy"):
        assert by_name[name]["work_pool"]["name"] == "juryflow-gpu"
        assert by_name[name]["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert by_name["label-batch"]["work_pool"]["name"] == "juryflow-cpu" and by_name["label-batch"]["schedules"]
    trigger = by_name["train-reward-model"]["triggers"][0]
    assert trigger["expect"] == ["juryflow.labels.ready"]
    assert trigger["parameters"] == {"snapshot_id": "{{ event.payload.snapshot_id }}"}
    assert by_name["finetune-policy"]["triggers"][0]["expect"] == ["juryflow.reward_model.promoted"]
    for d in spec["deployments"]:
        module, func = d["entrypoint"].split(":")
        assert func in (REPO / module).read_text(), d["entrypoint"]


def test_heartbeat_automation_file_is_a_valid_proactive_automation():
    import yaml
    from prefect.events.schemas.automations import AutomationCore, Posture

    (automation,) = yaml.safe_load((REPO / "automations" / "heartbeat.yaml").read_text())["automations"]
    parsed = AutomationCore.model_validate(automation)
    assert parsed.trigger.posture == Posture.Proactive and parsed.actions[0].type == "change-flow-run-state"


def test_labels_ready_is_emitted_only_when_due(prefect_harness, juryflow_env, monkeypatch):
    from prefect import flow

    from labeling.export import Snapshot
    from labeling.records import LAST_TRIGGER_KEY, TRAINING_KIND
    from tasks import resources
    from tasks.events import emit_labels_ready

    LAST_TRIGGER = (TRAINING_KIND, LAST_TRIGGER_KEY)

    monkeypatch.setenv("JURYFLOW__TRAINING__TRIGGER_MIN_NEW_LABELS", "100")

    @flow
    def emit(snap):
        return emit_labels_ready(snap)

    def snap(n):
        return Snapshot(snapshot_id=f"s{n}", path=juryflow_env / f"s{n}", n_rows=n, counts_by_source={},
                        created_at="2026-01-01T00:00:00+00:00")

    assert emit(snap(60))["emitted"] is False
    assert resources.store().get_record(*LAST_TRIGGER) is None
    assert emit(snap(120))["emitted"] is True
    assert resources.store().get_record(*LAST_TRIGGER)["snapshot_id"] == "s120"
    # 150 rows is only 30 more than the snapshot that last triggered training: not due.
    assert emit(snap(150)) == {"snapshot_id": "s150", "new_labels": 30, "threshold": 100, "emitted": False}
    assert emit(snap(230))["emitted"] is True
