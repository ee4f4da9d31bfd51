"""The Prefect task runner that label_batch's chunk tasks run on, from the ``task_runner`` settings.

``serial`` and ``threads`` run chunks in the flow's own process. ``dask`` and ``ray`` start a local
cluster of ``workers`` single-threaded processes for the run and stop it afterwards, or join a
running cluster at ``address``. Tasks load settings and models themselves (tasks/resources.py), so
what a worker needs is the same configuration: a local cluster's processes inherit the flow
process's environment and working directory (JURYFLOW_CONFIG, JURYFLOW__ variables), and each
caches its models, so it loads each one once. The workers of a running cluster must be started
with that configuration and this version of juryflow installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import ValidationError
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from labeling.errors import UserError
from labeling.settings import TaskRunnerSettings, load_settings

RunnerKind = Literal["serial", "threads", "dask", "ray"]


def build_task_runner(cfg: TaskRunnerSettings) -> TaskRunner:
    """A new, unstarted task runner for ``cfg`` (Prefect starts it when the flow run starts)."""
    if cfg.kind == "serial":
        return ThreadPoolTaskRunner(max_workers=1)
    if cfg.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    _check_api_shared(cfg)
    if cfg.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.address:
            return DaskTaskRunner(address=cfg.address)
        # Processes, one thread each: the labeler and judge hold the GIL for most of a chunk, and
        # OMP_NUM_THREADS=1 per process was fastest for small CPU models (prefect.yaml).
        options = {"n_workers": cfg.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={**options, **cfg.cluster_options})
    from tasks.ray_runner import LocalRayTaskRunner, RayTaskRunner

    if cfg.address:
        return RayTaskRunner(address=cfg.address)
    # One CPU slot per chunk task, so `workers` chunks run at once; no dashboard to serve.
    options = {"num_cpus": cfg.workers, "include_dashboard": False}
    return LocalRayTaskRunner(init_kwargs={**options, **cfg.cluster_options})



def _check_api_shared(cfg: TaskRunnerSettings) -> None:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        # Each worker process would otherwise start a temporary Prefect API of its own.
        raise UserError(
            f"task_runner.kind is {cfg.kind!r} but PREFECT_API_URL is unset, so its worker processes have no Prefect API "
            "to report to: run it with `python -m flows.label_batch_cluster` (which shares one), or start a server "
            "(`prefect server start`) and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )


@contextmanager
def shared_prefect_api() -> Iterator[None]:
    """Run the block against a Prefect API that worker processes can reach: the configured one, else a
    temporary one started here whose address the flow hands its workers (in the settings it sends them)."""
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    server = SubprocessASGIServer()  # the one a flow run without PREFECT_API_URL would start anyway
    server.start()
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        # Send the run's last queued log lines while the server is still up ("Error logging to API" otherwise).
        APILogWorker.drain_all(timeout=5)
        server.stop()


def runner_settings(kind: RunnerKind | None = None, workers: int | None = None,
                    address: str | None = None) -> TaskRunnerSettings:
    """The configured task_runner settings with the given values (flow parameters) in their place.

    Another kind than the configured one starts from that kind's defaults: the configured
    address and cluster options belong to the configured cluster.
    """
    configured = load_settings().task_runner
    base: dict[str, Any] = configured.model_dump() if kind in (None, configured.kind) else {"workers": configured.workers}
    given = {"kind": kind, "workers": workers, "address": address}
    try:
        return TaskRunnerSettings.model_validate({**base, **{k: v for k, v in given.items() if v is not None}})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'task_runner'}: {e['msg']}" for e in exc.errors())
        raise UserError(f"task runner runner={kind} workers={workers} address={address}: {problems}") from None


class ConfiguredTaskRunner(TaskRunner):
    """Builds the runner the task_runner settings name as each flow run starts, and hands it every task.

    A flow's decorator is evaluated at import, before settings can be read (tests and the command
    line set them later); deciding per run makes JURYFLOW__TASK_RUNNER__KIND=dask apply to the
    flow however it is started: the command line, ``python -m``, a deployment.
    """

    def __init__(self) -> None:
        super().__init__()
        self._runner: TaskRunner | None = None

    def duplicate(self) -> ConfiguredTaskRunner:
        return type(self)()

    def __enter__(self) -> ConfiguredTaskRunner:
        super().__enter__()
        self._runner = build_task_runner(load_settings().task_runner).__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        try:
            if self._runner is not None:
                self._runner.__exit__(*exc_info)
        finally:
            self._runner = None
            super().__exit__(*exc_info)

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        return self._started_runner().submit(task, parameters, wait_for, dependencies)

    def map(self, task, parameters, wait_for=None):
        return self._started_runner().map(task, parameters, wait_for)

    def _started_runner(self) -> TaskRunner:
        if self._runner is None:
            raise RuntimeError("ConfiguredTaskRunner got a task before it was started: use it as a flow's task_runner")
        return self._runner

    def __getstate__(self) -> dict[str, Any]:
        # A started cluster client or thread pool does not pickle; a copy starts its own runner.
        return {**self.__dict__, "_runner": None, "_started": False}
