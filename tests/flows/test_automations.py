"""automations/heartbeat.yaml and automations/pending.yaml on a real `prefect server start`: a flow run
whose process died is marked Crashed, wherever it died, and a run that keeps sending heartbeats is not.

The runs are driven through the API as a worker and the flow engine would drive them (states, and
heartbeat events posted to /api/events), so each way of dying is hit exactly rather than by timing a
kill: Pending before the process started, Running before its first heartbeat (the gap the soak found:
a worker killed right after its run reported Running left it Running, holding the concurrency slot),
and Running after a heartbeat. The windows are shortened to seconds, and the copies match only this
test's flow, so other tests' runs on the shared server are never touched.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from benchmarks.soak import shortened_automation

WITHIN_S = 10  # heartbeat silence window; the pending window is twice this, as in the soak


def _heartbeat(api_url: str, run_id, flow_id) -> None:
    event = {"id": str(uuid.uuid4()), "occurred": datetime.now(timezone.utc).isoformat(),
             "event": "prefect.flow-run.heartbeat",
             "resource": {"prefect.resource.id": f"prefect.flow-run.{run_id}"},
             "related": [{"prefect.resource.id": f"prefect.flow.{flow_id}", "prefect.resource.role": "flow"}]}
    httpx.post(f"{api_url}/events", json=[event], timeout=10).raise_for_status()


@pytest.mark.integration
def test_runs_whose_process_died_are_crashed_and_a_beating_run_is_not(prefect_server):
    from prefect import flow
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore
    from prefect.states import Pending, Running

    api_url = prefect_server["api_url"]
    probe = flow(name=f"dead-process-probe-{uuid.uuid4().hex[:8]}")(lambda: None)
    with SyncPrefectClient(api_url) as client:
        flow_id = client.create_flow_from_name(probe.name)
        for name, window in (("heartbeat", WITHIN_S), ("pending", 2 * WITHIN_S)):
            automation = shortened_automation(name, window)
            automation["name"] += f"-{probe.name}"
            automation["trigger"]["match_related"] = {"prefect.resource.id": f"prefect.flow.{flow_id}"}
            client.create_automation(AutomationCore.model_validate(automation))
        time.sleep(3)  # the triggers service picks up new automations from a change listener

        runs = {case: client.create_flow_run(probe, name=case).id
                for case in ("died-pending", "died-before-first-heartbeat", "died-after-a-heartbeat", "alive")}
        for case, run_id in runs.items():
            client.set_flow_run_state(run_id, Pending(), force=True)
            if case != "died-pending":
                client.set_flow_run_state(run_id, Running(), force=True)
        for case in ("died-after-a-heartbeat", "alive"):
            _heartbeat(api_url, runs[case], flow_id)

        dead = {case: run_id for case, run_id in runs.items() if case != "alive"}
        deadline = time.monotonic() + 8 * WITHIN_S
        while time.monotonic() < deadline:
            states = {case: client.read_flow_run(run_id).state for case, run_id in runs.items()}
            if all(states[case].type.value == "CRASHED" for case in dead):
                break
            _heartbeat(api_url, runs["alive"], flow_id)
            time.sleep(2)
        summary = {case: (s.type.value, s.message) for case, s in states.items()}
        for case in dead:
            assert states[case].type.value == "CRASHED", summary
        assert "pending automation" in states["died-pending"].message, summary
        for case in ("died-before-first-heartbeat", "died-after-a-heartbeat"):
            assert "heartbeat automation" in states[case].message, summary
        assert states["alive"].type.value == "RUNNING", summary
