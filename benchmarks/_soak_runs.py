"""The soak's view of its flow runs on the Prefect server: submit, wait, and count how runs ended."""

from __future__ import annotations

import time
from collections import Counter
from uuid import UUID

IN_FLIGHT = ("PENDING", "RUNNING")
HEARTBEAT_MARK = "juryflow heartbeat automation"  # in the message automations/heartbeat.yaml sets
PENDING_MARK = "juryflow pending automation"  # and automations/pending.yaml


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


class FlowRuns:
    def __init__(self, api_url: str) -> None:
        from prefect.client.orchestration import SyncPrefectClient

        self.client = SyncPrefectClient(api_url)
        self.client.__enter__()
        self._deployments: dict[str, UUID] = {}

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def deployment_id(self, name: str) -> UUID:
        if name not in self._deployments:
            self._deployments[name] = self.client.read_deployment_by_name(name).id
        return self._deployments[name]

    def all_runs(self) -> list:
        """Every run of a deployment (the fault-free replay's runs have none), oldest first."""
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
        from prefect.client.schemas.sorting import FlowRunSort

        flt = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(is_null_=False))
        out, page = [], 200
        while True:
            batch = self.client.read_flow_runs(flow_run_filter=flt, sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                                               limit=page, offset=len(out))
            out += batch
            if len(batch) < page:
                return out

    def in_flight(self) -> dict[UUID, str]:
        """Pending and running runs, and which of the two each is."""
        return {r.id: r.state_type.value for r in self.all_runs() if r.state_type and r.state_type.value in IN_FLIGHT}

    def by_input(self) -> dict[str, list[str]]:
        """label-batch runs given an input file: the state type of each, per file."""
        label = self.deployment_id("label-batch/label-batch")
        out: dict[str, list[str]] = {}
        for r in self.all_runs():
            if r.deployment_id == label and r.parameters.get("input_path"):
                out.setdefault(r.parameters["input_path"], []).append(r.state_type.value if r.state_type else "")
        return out

    def label_batch_in_flight(self) -> bool:
        label = self.deployment_id("label-batch/label-batch")
        return any(r.deployment_id == label and r.state_type and r.state_type.value in (*IN_FLIGHT, "SCHEDULED")
                   and (r.state_type.value != "SCHEDULED" or r.expected_start_time <= _now())
                   for r in self.all_runs())

    def submit(self, name: str, parameters: dict) -> UUID:
        return self.client.create_flow_run_from_deployment(self.deployment_id(name), parameters=parameters).id

    def run_to_completion(self, name: str, parameters: dict, deadline: float) -> UUID:
        """Submit (while no label-batch run is in flight) until one run completes: a collision with a
        scheduled run cancels the new one (CANCEL_NEW)."""
        while time.monotonic() < deadline:
            if self.label_batch_in_flight():
                time.sleep(3)
                continue
            run_id = self.submit(name, parameters)
            while time.monotonic() < deadline:
                run = self.client.read_flow_run(run_id)
                if run.state_type and run.state_type.value == "COMPLETED":
                    return run_id
                if run.state and run.state.is_final():
                    break
                time.sleep(3)
            time.sleep(3)
        raise TimeoutError(f"no {name} run completed before the drain deadline; see the worker logs")

    def pause_all(self) -> None:
        """No new runs: pause every deployment and delete the runs its schedule had queued."""
        for deployment in self.client.read_deployments():
            self.client.pause_deployment(deployment.id)
        for r in self.all_runs():
            if r.state_type and r.state_type.value == "SCHEDULED":
                self.client.delete_flow_run(r.id)

    def wait_until_settled(self, deadline: float) -> list[str]:
        """Wait until no run is pending or running (zombies need the heartbeat automation); the ones left."""
        while True:
            left = [f"{r.name} ({r.state_type.value})" for r in self.all_runs()
                    if r.state_type and r.state_type.value in IN_FLIGHT]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(5)


def run_summary(runs: list, killed_ids: set[UUID]) -> dict:
    """How the deployment runs ended; a run is recovered when it ended Crashed or Failed and a later run
    of the same deployment and input completed (the file driver and the schedules redo the work)."""
    by_state = Counter(r.state_type.value if r.state_type else "NONE" for r in runs)
    completed: dict[tuple, list] = {}
    for r in runs:
        if r.state_type and r.state_type.value == "COMPLETED" and r.start_time:
            completed.setdefault((r.deployment_id, r.parameters.get("input_path")), []).append(r.start_time)
    broken = [r for r in runs if r.state_type and r.state_type.value in ("CRASHED", "FAILED")]
    def redone(r) -> bool:  # a file's work is done by any completed run of it; a scheduled run's by a later one
        done = completed.get((r.deployment_id, r.parameters.get("input_path")), [])
        return bool(done) if r.parameters.get("input_path") else any(t > (r.start_time or r.expected_start_time)
                                                                     for t in done)

    recovered = [r for r in broken if redone(r)]
    killed = [r for r in runs if r.id in killed_ids]
    return {
        # Runs cancelled on a collision (CANCEL_NEW) never ran.
        "runs": sum(1 for r in runs if r.state_type and r.state_type.value != "CANCELLED"),
        "runs_by_state": dict(sorted(by_state.items())),
        "recovered_runs": len(recovered),
        "unrecovered_runs": [r.name for r in broken if r not in recovered],
        "runs_killed_with_worker": len(killed),
        "crashed_by_heartbeat": sum(1 for r in runs if r.state_type and r.state_type.value == "CRASHED"
                                    and HEARTBEAT_MARK in (r.state.message or "")),
        "crashed_while_pending": sum(1 for r in runs if r.state_type and r.state_type.value == "CRASHED"
                                     and PENDING_MARK in (r.state.message or "")),
        "killed_runs_left_in_flight": [r.name for r in killed if r.state_type and r.state_type.value in IN_FLIGHT],
    }
