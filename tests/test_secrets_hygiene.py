"""Secrets (judge.api_key, labelstudio.api_key) must appear nowhere but in the files meant to hold them.

The real paths that carry secrets run with known sentinel values -- the OpenAI-compatible judge
against a local server that fails, harvest against an unreachable Label Studio, the settings file
that `juryflow labelstudio up` writes -- and then everything written is searched for the sentinels:
logs, stdout/stderr, Prefect logs, artifacts and run states, error messages, exported datasets,
`juryflow status`, and every file in the data dir.
"""

from __future__ import annotations

import json
import logging
import socket
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

JUDGE_KEY = "sk-SENTINEL-judge-4f1c9a7e2b"
LS_TOKEN = "SENTINELlstoken8d3e51a0c6f"
SENTINELS = (JUDGE_KEY, LS_TOKEN)


class FailingCompletions(BaseHTTPRequestHandler):
    """A completions server that is overloaded once, then refuses the key -- echoing it back, as
    some real servers do ("Incorrect API key provided: ..."), so the client must not repeat it."""

    seen_authorization: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        auth = self.headers.get("Authorization", "")
        self.seen_authorization.append(auth)
        status = 503 if len(self.seen_authorization) == 1 else 401
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def failing_judge_server():
    FailingCompletions.seen_authorization = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _seed_judge_pending(n: int) -> list[str]:
    """Samples the labeler was confident about, waiting for the judge; a few already labeled."""
    from labeling.schemas import AILabel, FinalLabel, Route, RouteReason
    from labeling.ingest import load_records, parse_records
    from labeling.settings import IngestSettings
    from labeling.synthetic import generate, write_jsonl
    from tasks import resources

    path = write_jsonl(generate(n, seed=5), resources.settings().data_dir / "input.jsonl")
    samples, _ = parse_records(load_records(path), IngestSettings())
    st = resources.store()
    st.add_samples(samples, source="secrets-test")
    ids = [s.sample_id for s in samples]
    st.record_ai_labels([AILabel(sample_id=i, p_a=0.95, labeler_name="emb", labeler_version="v1") for i in ids])
    st.record_routes(
        [Route(sample_id=i, to_judge=True, to_human=False, reasons=[RouteReason.high_confidence]) for i in ids],
        stage="labeler",
    )
    # Two already accepted, so the export below has rows to write.
    done = [FinalLabel(sample_id=i, preferred="A", source="judge", labeler_version="v1", judge_version="j0",
                       confidence=0.95, n_annotators=0) for i in ids[:2]]
    st.record_final_labels(done)
    return ids


def _prefect_records() -> list[str]:
    """Everything the Prefect API stored: logs, artifacts, flow and task run states and parameters."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        out = [json.dumps(a.model_dump(mode="json")) for a in client.read_artifacts()]
        out += [json.dumps(r.model_dump(mode="json")) for r in client.read_flow_runs()]
        out += [json.dumps(r.model_dump(mode="json")) for r in client.read_task_runs()]
        out += [json.dumps(log.model_dump(mode="json")) for log in client.read_logs()]
    return out


def test_secrets_appear_only_in_their_own_files(prefect_harness, juryflow_env, monkeypatch, failing_judge_server,
                                                caplog, capfd):
    from typer.testing import CliRunner

    import flows.label_batch as label_module
    from flows.harvest_reviews import harvest_reviews
    from juryflow.cli import app
    from labeling.labelstudio.server import LabelStudioServer, record_in_settings_file
    from tasks.pipeline import judge_and_merge

    caplog.set_level(logging.DEBUG)
    data_dir = juryflow_env / "data"
    monkeypatch.setenv("JURYFLOW__JUDGE__BACKEND", "openai")
    monkeypatch.setenv("JURYFLOW__JUDGE__BASE_URL", failing_judge_server)
    monkeypatch.setenv("JURYFLOW__JUDGE__MODEL_PATH", "served-judge")
    monkeypatch.setenv("JURYFLOW__JUDGE__API_KEY", JUDGE_KEY)
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__API_KEY", LS_TOKEN)
    # The real task and its retries, without the production backoff (2, 8, 30 s).
    monkeypatch.setattr(label_module, "judge_and_merge", judge_and_merge.with_options(retry_delay_seconds=0))
    _seed_judge_pending(6)
    errors: list[str] = []

    # 1. The judge: the key goes out as a header, the server fails, the flow fails.
    with pytest.raises(Exception) as judge_error:
        label_module.label_batch()
    errors += [str(judge_error.value), repr(judge_error.value)]
    assert FailingCompletions.seen_authorization[0] == f"Bearer {JUDGE_KEY}", "the key really was sent"
    assert len(FailingCompletions.seen_authorization) >= 2, "the overloaded answer was retried"

    # 2. Harvest: the token is configured, Label Studio is unreachable, retries run out.
    with pytest.raises(Exception) as harvest_error:
        harvest_reviews(retry_delay_seconds=[0, 0, 0, 0])
    errors += [str(harvest_error.value), repr(harvest_error.value)]
    assert "127.0.0.1" in str(harvest_error.value), "the error names the server"

    # 3. Export and status, with both secrets in the environment.
    runner = CliRunner()
    exported = runner.invoke(app, ["export"])
    assert exported.exit_code == 0, exported.output
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output

    # 4. Settings files that hold secrets are private.
    settings_file = juryflow_env / "juryflow-ls.yaml"
    settings_file.write_text("campaign: c1\n")
    settings_file.chmod(0o644)
    record_in_settings_file(settings_file, "http://127.0.0.1:8080", LS_TOKEN)
    assert _mode(settings_file) == 0o600
    assert LS_TOKEN in settings_file.read_text() and "campaign: c1" in settings_file.read_text()
    ls_credentials = LabelStudioServer(data_dir).credentials_path
    LabelStudioServer(data_dir).credentials()
    assert _mode(ls_credentials) == 0o600

    captured = capfd.readouterr()
    written = {
        "errors": "\n".join(errors),
        "logs": "\n".join(f"{r.name}: {r.getMessage()} {r.exc_text or ''}" for r in caplog.records),
        "stdout": captured.out,
        "stderr": captured.err,
        "cli": exported.output + status.output,
        "prefect": "\n".join(_prefect_records()),
    }
    allowed = {settings_file.resolve(), ls_credentials.resolve()}
    files = [p for p in juryflow_env.rglob("*") if p.is_file() and p.resolve() not in allowed]
    assert any(p.suffix == ".parquet" for p in files), "the export wrote a snapshot to search"
    for path in files:
        written[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    assert "v1/completions" in written["errors"] and "HTTP 401" in written["errors"], "the judge error was caught"
    assert "[redacted judge.api_key]" in written["errors"], "the server's echo of the key was redacted"
    leaks = [(where, secret) for where, text in written.items() for secret in SENTINELS if secret in text]
    assert leaks == [], f"secrets leaked into: {leaks}"


def test_demo_settings_file_is_private(tmp_path):
    from juryflow.demo import _write_demo_config
    from labeling.labelstudio.server import record_in_settings_file

    path = _write_demo_config(tmp_path / "juryflow.yaml", tmp_path, tmp_path / "head")
    assert _mode(path) == 0o600
    record_in_settings_file(path, "http://127.0.0.1:8080", LS_TOKEN)
    assert _mode(path) == 0o600
    assert "model_path" in path.read_text(), "the demo's own keys are kept"
