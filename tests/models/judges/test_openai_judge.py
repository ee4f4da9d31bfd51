"""OpenAICompatibleJudge against a real HTTP server on 127.0.0.1 (tests/models/judges/completions_server.py).

The real `vllm serve` runs in test_vllm_judge.py (two of them as replicas); the pool on several plain HTTP
servers in test_judge_replicas.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from labeling.constitution import load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION
from models.judges.openai_judge import JudgeServerError, LogprobsUnsupportedError, OpenAICompatibleJudge
from tests.models.judges.completions_server import ServerScript, completions_server

SECRET = "sk-juryflow-test-DO-NOT-LEAK-4242"


@pytest.fixture
def server() -> Iterator[tuple[str, ServerScript]]:
    with completions_server() as (url, script):
        yield url, script


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
