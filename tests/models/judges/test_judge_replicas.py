"""The judge on several servers: models/judges/replicas.py's pool, then OpenAICompatibleJudge on two
real HTTP servers (tests/models/judges/completions_server.py).

Two real `vllm serve` replicas, one killed mid-batch, are in test_vllm_judge.py: they share that
module's vLLM engines instead of starting two more.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from labeling.constitution import load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION, load_settings
from models.factory import build_judge_engine
from models.judges.openai_judge import JudgeServerError, OpenAICompatibleJudge
from models.judges.replicas import AllServersFailedError, Server, ServerPool, ServerUnavailableError
from tests.models.judges.completions_server import completions_server

# ---- the pool alone: calls are plain functions of the server they are given


class Clock:
    """A clock the test moves by hand, so cool-downs are checked without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pool(*urls: str, per_server: int = 2, probe=lambda server: True, clock=None) -> ServerPool:
    servers = [Server(url, client=None) for url in urls]
    return ServerPool(servers, per_server, probe, cooldown_s=1.0, max_cooldown_s=4.0, clock=clock or time.monotonic)


def _unavailable(server: Server):
    raise ServerUnavailableError(f"{server.url} refused", reason="refused")


def test_pool_spreads_and_bounds_each_server():
    pool = _pool("http://a", "http://b", per_server=2)
    lock, in_flight, peak = threading.Lock(), {"http://a": 0, "http://b": 0}, {"http://a": 0, "http://b": 0}

    def call(server: Server) -> str:
        with lock:
            in_flight[server.url] += 1
            peak[server.url] = max(peak[server.url], in_flight[server.url])
        time.sleep(0.02)
        with lock:
            in_flight[server.url] -= 1
        return server.url

    with ThreadPoolExecutor(max_workers=8) as threads:  # more callers than the pool's 4 slots
        answers = list(threads.map(lambda _: pool.run(call), range(24)))
    assert len(answers) == 24 and pool.served() == {"http://a": 12, "http://b": 12}
    assert peak == {"http://a": 2, "http://b": 2}  # reached, never exceeded


def test_pool_moves_a_request_off_an_unavailable_server_and_checks_it_again_later():
    clock, probes = Clock(), []
    pool = _pool("http://a", "http://b", probe=lambda s: probes.append(s.url) or True, clock=clock)
    b_is_down = True

    def call(server: Server) -> str:
        if server.url == "http://b" and b_is_down:
            _unavailable(server)
        return server.url

    first = [pool.run(call) for _ in range(4)]
    assert first == ["http://a"] * 4  # the request sent to b moved to a; the rest never went to b
    assert pool.served() == {"http://a": 4, "http://b": 0}
    b_is_down = False
    assert [pool.run(call) for _ in range(2)] == ["http://a"] * 2  # b cools down for 1 s
    assert probes == []
    clock.now = 1.5  # its cool-down is over: the next caller checks it, and it is back
    assert sorted(pool.run(call) for _ in range(2)) == ["http://a", "http://b"]
    assert probes == ["http://b"]


def test_pool_cool_down_doubles_while_a_server_stays_down():
    clock = Clock()
    pool = _pool("http://a", "http://b", probe=lambda s: False, clock=clock)
    for _ in range(2):  # the first request goes to a, the second to b, which fails: down for 1 s
        pool.run(lambda s: _unavailable(s) if s.url == "http://b" else s.url)
    b = pool.servers[1]
    assert b.down_until == 1.0 and b.failures == 1
    clock.now = 1.0
    with pytest.raises(AllServersFailedError, match="http://b: no answer to its health check"):
        pool.run(_unavailable)  # b's health check fails (down for 2 s more), then a fails too
    assert b.down_until == 3.0 and b.failures == 2


def test_pool_cool_down_keeps_doubling_for_a_server_that_passes_its_health_check_but_fails_requests():
    clock = Clock()
    pool = _pool("http://a", "http://b", per_server=1, probe=lambda s: True, clock=clock)
    failing_b = lambda s: _unavailable(s) if s.url == "http://b" else s.url  # noqa: E731
    b = pool.servers[1]
    for expected_wait in (1.0, 2.0, 4.0):
        while b.down_until is None or b.down_until <= clock.now:  # its probe passes; its request fails again
            pool.run(failing_b)
        assert b.down_until - clock.now == expected_wait, b
        clock.now = b.down_until
    assert pool.run(lambda s: s.url) in {"http://a", "http://b"}
    while b.failures:  # a request b answers ends its run of failures
        pool.run(lambda s: s.url)
    assert b.served >= 1 and b.down_until is None


def test_pool_all_servers_failing_is_one_line_naming_each_url():
    pool = _pool("http://a:1/v1", "http://b:2/v1")
    with pytest.raises(AllServersFailedError) as info:
        pool.run(_unavailable)
    message = str(info.value)
    assert "\n" not in message and "http://a:1/v1: refused" in message and "http://b:2/v1: refused" in message
    assert "judge.base_url" in message


def test_pool_of_one_raises_the_servers_own_error_and_never_marks_it_down():
    pool = _pool("http://a")
    with pytest.raises(ServerUnavailableError, match="http://a refused"):
        pool.run(_unavailable)
    assert pool.servers[0].down_until is None and pool.run(lambda s: s.url) == "http://a"


def test_pool_raises_other_errors_at_once():
    calls = []

    def wrong_key(server: Server):
        calls.append(server.url)
        raise JudgeServerError("HTTP 401 (check judge.api_key)")

    pool = _pool("http://a", "http://b")
    with pytest.raises(JudgeServerError, match="401"):
        pool.run(wrong_key)
    assert len(calls) == 1  # the same on every replica: not tried elsewhere
    assert all(s.down_until is None and s.in_flight == 0 for s in pool.servers)
    assert pool.served() == {"http://a": 0, "http://b": 0}  # a raised request was not answered


def test_pool_rejects_a_url_listed_twice():
    with pytest.raises(ValueError, match="listed twice"):
        _pool("http://a", "http://a")


# ---- the judge on two real HTTP servers


@pytest.fixture(scope="module")
def constitution():
    return load_constitution(DEFAULT_CONSTITUTION)


def _samples(n: int) -> list[Sample]:
    """Slot A holds the [good] answer in every third sample only, so verdicts differ by sample."""
    good, meh = "[good] answer", "meh"
    return [
        Sample(sample_id=f"s{i}", prompt=f"question {i}?", response_a=good if i % 3 == 0 else meh,
               response_b=meh if i % 3 == 0 else good)
        for i in range(n)
    ]  # fmt: skip


def _verdicts(judge: OpenAICompatibleJudge, samples: list[Sample], constitution):
    return {v.sample_id: (v.p_a_original, v.p_a_swapped, v.preferred) for v in judge.judge(samples, constitution)}


def test_two_servers_share_the_batch_and_agree_with_one(constitution):
    samples = _samples(20)
    with completions_server() as (url_a, script_a), completions_server() as (url_b, script_b):
        # Long enough that each server reaches its bound of 3 in flight even on a loaded machine (at 0.02 s
        # a busy CI core once left one server short of 3, or of its share).
        script_a.delay_s = script_b.delay_s = 0.15
        with OpenAICompatibleJudge(url_a, model="tiny-judge", max_concurrency=3) as one:
            alone = _verdicts(one, samples, constitution)
        requests_alone = script_a.requests
        with OpenAICompatibleJudge([url_a, url_b], model="tiny-judge", max_concurrency=3) as two:
            shared = _verdicts(two, samples, constitution)
            served = two.engine.pool.served()
    assert shared == alone and len(shared) == 20
    assert served[url_a] + served[url_b] == 40 and min(served.values()) >= 10  # both orders of 20 samples
    assert script_a.requests - requests_alone + script_b.requests == 40  # nothing sent twice
    assert script_a.max_in_flight == 3 and script_b.max_in_flight == 3  # the bound is per server


def test_a_server_dying_mid_batch_loses_no_verdict_and_rejoins_after_a_restart(constitution):
    samples = _samples(30)
    with completions_server() as (url_a, script_a), completions_server() as (url_b, script_b):
        script_a.delay_s = script_b.delay_s = 0.02
        script_b.die_after = 5  # then it drops every connection, mid-batch, with requests in flight
        with OpenAICompatibleJudge([url_a, url_b], model="tiny-judge", max_concurrency=3, cooldown_s=0.5) as judge:
            verdicts = judge.judge(samples, constitution)
            served_after_death = judge.engine.pool.served()
            assert [v.sample_id for v in verdicts] == [s.sample_id for s in samples]  # none lost, none twice
            assert all(v.parse_error is None for v in verdicts)
            assert sum(served_after_death.values()) == 60 and 5 <= served_after_death[url_b] < 30
            assert script_b.requests > script_b.answered  # b dropped requests, and a answered them
            script_b.dead = False  # the replica is restarted
            b = judge.engine.pool.servers[1]
            time.sleep(max(0.0, b.down_until - time.monotonic()) + 0.05)  # its cool-down ends
            judge.judge(_samples(6), constitution)
            assert judge.engine.pool.served()[url_b] > served_after_death[url_b]


def test_all_servers_down_is_one_line_naming_them(constitution):
    urls = ["http://127.0.0.1:9/v1", "http://127.0.0.1:7/v1"]  # discard and echo ports: nothing listens
    with OpenAICompatibleJudge(urls, model="tiny-judge", timeout_s=2) as judge:
        with pytest.raises(JudgeServerError) as info:
            judge.judge(_samples(3), constitution)
    message = str(info.value)
    assert "\n" not in message and message.startswith("all 2 judge servers failed")
    assert all(f"{url}: APIConnectionError" in message for url in urls)


# ---- the settings


@pytest.mark.parametrize(
    "base_url",
    [["http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1"], "http://127.0.0.1:8000/v1, http://127.0.0.1:8001/v1"],
)
def test_settings_take_a_list_of_replicas(base_url):
    settings = load_settings(judge={"backend": "openai", "base_url": base_url, "model_path": "judge"})
    engine = build_judge_engine(settings)
    assert engine.base_urls == ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8001/v1")
    assert hash(settings.judge.base_url)  # the judge cache keys on it


def test_settings_keep_the_single_url():
    settings = load_settings(judge={"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "model_path": "j"})
    assert settings.judge.base_url == "http://127.0.0.1:8000/v1"
    assert build_judge_engine(settings).base_urls == ("http://127.0.0.1:8000/v1",)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [(["http://a:1/v1", "http://a:1/v1"], "lists a server twice"), ("http://a:1/v1,a:2", "'a:2' is not an http")],
)
def test_settings_reject_bad_replica_lists(base_url, message):
    from labeling.settings import SettingsError

    with pytest.raises(SettingsError, match=message):
        load_settings(judge={"backend": "openai", "base_url": base_url, "model_path": "judge"})
