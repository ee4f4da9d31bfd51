"""The task runner built from the task_runner settings, and the flow parameters that override them.

Nothing here starts a cluster: tests/flows/test_task_runners.py runs label_batch on real ones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from labeling.errors import UserError
from labeling.settings import SettingsError, TaskRunnerSettings, load_settings
from tasks.runners import ConfiguredTaskRunner, build_task_runner, runner_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def api_url():
    """Worker processes need a Prefect API to report to; building a runner starts nothing."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        yield


def test_serial_and_threads_run_in_the_flow_process():
    serial = build_task_runner(TaskRunnerSettings())
    threads = build_task_runner(TaskRunnerSettings(kind="threads", workers=8))
    assert isinstance(serial, ThreadPoolTaskRunner) and serial._max_workers == 1
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 8


def test_dask_starts_single_threaded_worker_processes_unless_given_a_scheduler(api_url):
    from prefect_dask import DaskTaskRunner

    local = build_task_runner(TaskRunnerSettings(kind="dask", workers=3, cluster_options={"memory_limit": "2GiB"}))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True,
                                    "dashboard_address": None, "memory_limit": "2GiB"}  # fmt: skip
    remote = build_task_runner(TaskRunnerSettings(kind="dask", address="tcp://10.0.0.5:8786"))
    assert remote.address == "tcp://10.0.0.5:8786" and remote.cluster_kwargs == {}


def test_ray_gets_one_cpu_slot_per_worker_unless_given_a_cluster(api_url):
    from prefect_ray import RayTaskRunner

    local = build_task_runner(TaskRunnerSettings(kind="ray", workers=4, cluster_options={"num_cpus": 6}))
    assert isinstance(local, RayTaskRunner) and local.address is None
    assert local.init_kwargs["num_cpus"] == 6 and local.init_kwargs["include_dashboard"] is False
    assert build_task_runner(TaskRunnerSettings(kind="ray", address="ray://head:10001")).address == "ray://head:10001"


class _FlakyRay:
    """ray.init and ray.shutdown, recorded; init fails as a raylet that missed Ray's 30 s deadline does."""

    def __init__(self, failures: list[Exception]):
        self.failures, self.calls, self.up = failures, [], False

    def init(self, **kwargs):
        self.calls.append("init")
        if self.failures:
            raise self.failures.pop(0)
        self.up = True

    def shutdown(self):
        self.calls.append("shutdown")
        self.up = False

    def is_initialized(self):
        return self.up


TIMED_OUT = Exception("The current node timed out during startup. This could happen because some of the raylet failed")


def test_a_local_ray_that_misses_its_start_deadline_is_started_again(monkeypatch):
    import tasks.ray_runner as ray_runner

    fake = _FlakyRay([TIMED_OUT, TIMED_OUT])
    monkeypatch.setattr(ray_runner, "ray", fake)
    ray_runner.start_local_ray({"num_cpus": 2})
    assert fake.calls == ["init", "shutdown", "init", "shutdown", "init"] and fake.up

    gave_up = _FlakyRay([TIMED_OUT] * 3)
    monkeypatch.setattr(ray_runner, "ray", gave_up)
    with pytest.raises(Exception, match="timed out during startup"):
        ray_runner.start_local_ray({})
    assert gave_up.calls.count("init") == ray_runner.RAY_START_ATTEMPTS

    other = _FlakyRay([ValueError("object_store_memory must be at least 75 MB")])
    monkeypatch.setattr(ray_runner, "ray", other)
    with pytest.raises(ValueError, match="object_store_memory"):
        ray_runner.start_local_ray({})
    assert other.calls == ["init"]  # a setting's error is not retried


def test_the_local_ray_runner_stops_the_ray_it_started_and_only_that(monkeypatch, api_url):
    import tasks.ray_runner as ray_runner

    fake = _FlakyRay([TIMED_OUT])
    monkeypatch.setattr(ray_runner, "ray", fake)
    monkeypatch.setattr(ray_runner.RayTaskRunner, "__enter__", lambda self: self)
    monkeypatch.setattr(ray_runner.RayTaskRunner, "__exit__", lambda self, *exc: None)
    runner = build_task_runner(TaskRunnerSettings(kind="ray", workers=2))
    with runner:
        assert fake.up
    assert not fake.up and fake.calls[-1] == "shutdown"

    joined = _FlakyRay([])
    joined.up = True  # started by someone else (a test fixture, `ray start`): left running
    monkeypatch.setattr(ray_runner, "ray", joined)
    with build_task_runner(TaskRunnerSettings(kind="ray", workers=2)):
        pass
    assert joined.up and joined.calls == []


def test_cluster_workers_without_a_prefect_api_is_a_one_line_fix():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(UserError, match="export PREFECT_API_URL"):
        build_task_runner(TaskRunnerSettings(kind="dask"))


def test_settings_come_from_the_environment_and_explain_a_mismatch(clean_env):
    clean_env.setenv("JURYFLOW__TASK_RUNNER__KIND", "dask")
    clean_env.setenv("JURYFLOW__TASK_RUNNER__CLUSTER_OPTIONS", '{"preload": ["my_setup"]}')
    assert load_settings().task_runner == TaskRunnerSettings(kind="dask", cluster_options={"preload": ["my_setup"]})
    clean_env.setenv("JURYFLOW__TASK_RUNNER__KIND", "threads")
    with pytest.raises(SettingsError, match="kind is 'threads'.*set kind to dask or ray"):
        load_settings()
    clean_env.setenv("JURYFLOW__TASK_RUNNER__KIND", "ray")
    clean_env.setenv("JURYFLOW__TASK_RUNNER__ADDRESS", "ray://head:10001")
    with pytest.raises(SettingsError, match="address .*cluster_options both set"):
        load_settings()


def test_flow_parameters_override_the_settings(clean_env):
    clean_env.setenv("JURYFLOW__TASK_RUNNER__KIND", "dask")
    clean_env.setenv("JURYFLOW__TASK_RUNNER__WORKERS", "4")
    clean_env.setenv("JURYFLOW__TASK_RUNNER__CLUSTER_OPTIONS", '{"memory_limit": "2GiB"}')
    assert runner_settings() == load_settings().task_runner
    assert runner_settings(workers=2).cluster_options == {"memory_limit": "2GiB"}
    # Another kind leaves the configured cluster's options behind, and keeps the worker count.
    assert runner_settings("ray") == TaskRunnerSettings(kind="ray", workers=4)
    with pytest.raises(UserError, match="workers=0.*greater than or equal to 1"):
        runner_settings(workers=0)


def test_label_batch_reads_the_runner_from_the_settings_at_each_run(clean_env):
    from flows.label_batch import label_batch

    assert isinstance(label_batch.task_runner, ConfiguredTaskRunner)
    clean_env.setenv("JURYFLOW__TASK_RUNNER__KIND", "threads")
    clean_env.setenv("JURYFLOW__TASK_RUNNER__WORKERS", "3")
    runner = label_batch.task_runner.duplicate()
    with runner:
        assert isinstance(runner._runner, ThreadPoolTaskRunner) and runner._runner._max_workers == 3
    assert runner._runner is None


def test_the_dask_deployment_passes_parameters_the_flow_accepts():
    import yaml

    from flows.label_batch_cluster import label_batch_cluster

    (deployment,) = [d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
                     if d["name"] == "label-batch-dask"]  # fmt: skip
    assert deployment["entrypoint"] == "flows/label_batch_cluster.py:label_batch_cluster"
    assert label_batch_cluster.validate_parameters(deployment["parameters"])["runner"] == "dask"
