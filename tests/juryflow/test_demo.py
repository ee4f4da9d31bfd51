"""``juryflow demo`` as a user runs it: its own settings, never the user's Label Studio, and the next lines just work."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

JURYFLOW = Path(sys.executable).parent / "juryflow"


class _Recorder(BaseHTTPRequestHandler):
    """Stands in for the user's own Label Studio: any request at all means the demo wrote to it."""

    seen: list[str] = []

    def _record(self) -> None:
        _Recorder.seen.append(f"{self.command} {self.path}")
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST = do_PATCH = do_PUT = _record

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def users_labelstudio():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _run(cwd: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    from prefect.settings import PREFECT_API_URL

    # The session's Prefect API: the README contract runs the demo on a temporary server, the Quickstart
    # way; here another start-up would only add CPU.
    base = {k: v for k, v in os.environ.items() if not k.startswith("JURYFLOW")}
    full = {**base, "PREFECT_HOME": str(cwd / ".prefect"), "PREFECT_API_URL": PREFECT_API_URL.value(),
            "COLUMNS": "200", **env}
    return subprocess.run([str(JURYFLOW), *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
def test_demo_keeps_to_itself_and_the_quickstart_follows(tmp_path: Path, users_labelstudio: str,
                                                         prefect_harness) -> None:
    # The user already set up their own Label Studio project, in ./juryflow.yaml and in the environment.
    (tmp_path / "juryflow.yaml").write_text(f"labelstudio:\n  url: {users_labelstudio}\n  api_key: users-token\n")
    demo = _run(tmp_path, "demo", "--no-labelstudio", "--n", "40", "--fit-n", "40", timeout=1200,
                JURYFLOW__LABELSTUDIO__URL=users_labelstudio, JURYFLOW__LABELSTUDIO__API_KEY="users-token")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert _Recorder.seen == [], "the demo called the user's Label Studio"
    out = demo.stdout
    assert "ignoring JURYFLOW__LABELSTUDIO__API_KEY, JURYFLOW__LABELSTUDIO__URL" in out
    assert "label-batch finished:" in out + demo.stderr
    assert "prefect server start" in out and "http://127.0.0.1:4200" in out
    assert "export JURYFLOW_CONFIG=" in out, "with a ./juryflow.yaml present, the demo says what to type"
    assert "users-token" not in (tmp_path / "juryflow-demo" / "juryflow.yaml").read_text()

    # Without a ./juryflow.yaml, the next quickstart lines find the demo's settings by themselves.
    (tmp_path / "juryflow.yaml").unlink()
    status = _run(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert "juryflow-demo" in status.stdout and "cold start" not in status.stdout
    assert "using the demo's settings" in status.stderr
    pending = _run(tmp_path, "human", "export-pending", "--out", "pending.jsonl")
    assert pending.returncode == 0 and "samples awaiting review" in pending.stdout
    assert len((tmp_path / "pending.jsonl").read_text().splitlines()) > 1
    assert _Recorder.seen == []
