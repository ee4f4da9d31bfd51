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
