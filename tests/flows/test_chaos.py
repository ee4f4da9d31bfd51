"""label_batch and harvest_reviews survive SIGKILL at random moments: nothing lost, nothing duplicated.

A small, seeded run of benchmarks/chaos.py (real subprocesses, a real SQLite store, a real Prefect
server and a real Label Studio server); the benchmark itself runs >= 20 kill/restart cycles.
"""

from __future__ import annotations

import pytest

from benchmarks.chaos import chaos

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.requires_labelstudio]

SEED = 20261125


def test_random_sigkills_lose_and_duplicate_nothing(tmp_path, prefect_server, ls_server):
    # The session's servers (tests/conftest.py): only juryflow's own processes are killed, never these.
    servers = (prefect_server["api_url"], ls_server)
    result = chaos(tmp_path, rounds=1, samples=16, min_kills=5, seed=SEED, servers=servers)
    print(result)
    assert result["violations"] == []
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["snapshot_equal"] and result["snapshot_rows"] > 0
    assert result["kills"] >= 5, "the run must really have been interrupted"
