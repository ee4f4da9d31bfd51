"""OpenAICompatibleJudge against a real HTTP server on 127.0.0.1 (http.server in a thread).

The server scores like a judge would: P(slot A) is high when the text in the RESPONSE A block is
marked ``[good]``, so the swapped-order mapping is checked end to end. The real `vllm serve`
runs in test_vllm_judge.py.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from labeling.constitution import load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION
from models.judges.openai_judge import JudgeServerError, LogprobsUnsupportedError, OpenAICompatibleJudge

SECRET = "sk-juryflow-test-DO-NOT-LEAK-4242"


@dataclass
class ServerScript:
    """What the fake-free test server does; the handler reads it, tests set it."""

    fail_first: int = 0  # answer 503 to this many requests first
    fail_status: int = 503
    with_logprobs: bool = True
    delay_s: float = 0.0
    retry_after: str | None = None  # the Retry-After header sent with the failures
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    auth_headers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _slot_a_is_good(prompt: str) -> bool:
    block = prompt.split("<<<RESPONSE A", 1)[1].split("RESPONSE A>>>", 1)[0]
    return "[good]" in block


class _Handler(BaseHTTPRequestHandler):
    script: ServerScript

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        script = self.server.script  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with script.lock:
            script.requests += 1
            nth = script.requests
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
            script.auth_headers.append(self.headers.get("Authorization", ""))
        try:
            time.sleep(script.delay_s)
            if self.path != "/v1/completions":
                return self._send(404, {"error": f"no route {self.path}"})
            if nth <= script.fail_first:
                # Like servers that quote a rejected key back: the judge must redact it from errors.
                auth = self.headers.get("Authorization", "")
                headers = {"Retry-After": script.retry_after} if script.retry_after else {}
                error = {"error": f"overloaded, try again (request auth: {auth})"}
                return self._send(script.fail_status, error, headers)
            if "[too-long]" in body["prompt"]:
                return self._send(400, {"error": "This model's maximum context length is 1024 tokens"})
            p = 0.8 if _slot_a_is_good(body["prompt"]) else 0.2
            top = {" A": math.log(p * 0.9), "A": math.log(p * 0.1), " B": math.log(1 - p), "the": -9.0}
            logprobs = {"tokens": [" A"], "token_logprobs": [top[" A"]], "top_logprobs": [top], "text_offset": [0]}
            choice = {"index": 0, "text": " A", "finish_reason": "length"}
            choice["logprobs"] = logprobs if script.with_logprobs and body.get("logprobs") else None
            self._send(200, {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": [choice]})
        finally:
            with script.lock:
                script.in_flight -= 1

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[tuple[str, ServerScript]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.script = ServerScript()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd.script  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def constitution():
    return load_constitution(DEFAULT_CONSTITUTION)


def _samples(n: int) -> list[Sample]:
    return [
        Sample(sample_id=f"s{i}", prompt=f"question {i}?", response_a=f"[good] answer {i}", response_b=f"meh {i}")
        for i in range(n)
    ]


def _judge(base_url: str, **kwargs) -> OpenAICompatibleJudge:
    return OpenAICompatibleJudge(base_url=base_url, model="tiny-judge", **kwargs)


def test_retries_503_then_reads_both_orders(server, constitution):
    url, script = server
    script.fail_first = 3
    with _judge(url, max_retries=5, max_concurrency=1, api_key=SecretStr(SECRET)) as judge:
        (verdict,) = judge.judge(_samples(1), constitution)
    assert script.requests == 3 + 2  # three 503s, then both orders
    assert verdict.parse_error is None
    # " A" and "A" both count for slot A; the server gives slot A 0.8 when it holds the [good] answer.
    assert verdict.p_a_original == pytest.approx(0.8 / (0.8 + 0.2))
    assert verdict.p_a_swapped == pytest.approx(0.8)  # swapped: slot A holds B, P(slot A)=0.2 -> p_a=0.8
    assert verdict.swap_consistent and verdict.preferred == "A"
    assert verdict.principles == [p.id for p in constitution.principles]
    assert script.auth_headers[-1] == f"Bearer {SECRET}"


def test_gives_up_after_max_retries_with_a_fix(server, constitution):
    url, script = server
    script.fail_first = 100
    judge = _judge(url, max_retries=2, max_concurrency=1)
    with judge, pytest.raises(JudgeServerError, match="HTTP 503 after 3 attempts.*lower judge.max_concurrency"):
        judge.judge(_samples(3), constitution)
    assert script.requests == 3  # one prompt, 3 attempts; the 5 queued prompts were cancelled, not sent


def test_server_without_logprobs_says_how_to_fix(server, constitution):
    url, script = server
    script.with_logprobs = False
    with _judge(url) as judge, pytest.raises(LogprobsUnsupportedError, match="--max-logprobs"):
        judge.judge(_samples(2), constitution)


def test_secret_never_in_logs_errors_or_repr(server, constitution, caplog):
    url, script = server
    script.fail_first = 100
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logs included
    judge = _judge(url, max_retries=1, api_key=SecretStr(SECRET))
    with judge, pytest.raises(JudgeServerError) as info:
        judge.judge(_samples(1), constitution)
    assert script.auth_headers and all(h == f"Bearer {SECRET}" for h in script.auth_headers)  # it WAS sent
    assert caplog.records, "expected retry logs to check"
    assert "[redacted judge.api_key]" in str(info.value)  # the server quoted the key; the judge redacted it
    for text in (caplog.text, str(info.value), repr(info.value), repr(judge), str(judge.__dict__)):
        assert SECRET not in text


def test_unreachable_server_is_a_clear_error(constitution):
    judge = _judge("http://127.0.0.1:9/v1", max_retries=1, timeout_s=2)  # port 9 (discard): nothing listens
    with judge, pytest.raises(JudgeServerError, match="server is up"):
        judge.judge(_samples(1), constitution)


def test_concurrency_is_bounded(server, constitution):
    url, script = server
    script.delay_s = 0.05
    with _judge(url, max_concurrency=3) as judge:
        verdicts = judge.judge(_samples(10), constitution)
    assert [v.sample_id for v in verdicts] == [f"s{i}" for i in range(10)]
    assert all(v.parse_error is None for v in verdicts)
    assert script.requests == 20
    assert script.max_in_flight == 3  # reached, never exceeded


def test_rejected_prompt_is_recorded_and_batch_carries_on(server, constitution):
    url, _ = server
    samples = _samples(2) + [Sample(sample_id="long", prompt="[too-long]", response_a="x", response_b="y")]
    with _judge(url) as judge:
        verdicts = judge.judge(samples, constitution)
    assert [v.parse_error is None for v in verdicts] == [True, True, False]
    assert "maximum context length" in verdicts[2].parse_error and verdicts[2].p_a is None


def test_version_tracks_template_and_options(server):
    url, _ = server
    plain, critique = _judge(url), _judge(url, critique=True)
    assert plain.version.startswith("tiny-judge-") and plain.version != critique.version
    assert plain.version == _judge(url).version


def test_retry_after_is_honoured(server, constitution):
    url, script = server
    script.fail_first, script.fail_status, script.retry_after = 1, 429, "1.5"
    started = time.monotonic()
    with _judge(url, max_retries=2, max_concurrency=1) as judge:
        (verdict,) = judge.judge(_samples(1), constitution)
    assert verdict.parse_error is None and script.requests == 1 + 2
    assert time.monotonic() - started >= 1.4  # waited as the server asked, not the 0.5 s first backoff


def test_no_key_sends_no_authorization_header(server, constitution, monkeypatch):
    url, script = server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-must-not-be-sent")
    with _judge(url) as judge:
        (verdict,) = judge.judge(_samples(1), constitution)
    assert verdict.parse_error is None
    assert script.auth_headers == ["", ""]
