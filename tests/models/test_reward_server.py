"""The reward server over real HTTP: the same scores as in-process scoring, OpenRLHF's protocol, bounds, the token."""

from __future__ import annotations

import json
import logging
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labeling.errors import UserError
from models.serving.reward_protocol import RequestError, parse_openrlhf_request, strip_end
from models.serving.reward_server import RewardServerConfig, check_bind, serve_registered_reward_model
from tests.models.training.synthetic import preference_rows

END = "<|end|>"  # the tiny chat template's end of turn


@pytest.fixture(scope="module")
def registered_rm(tmp_path_factory, tiny_reward_model_dir: Path):
    from models.training.registry import Registry

    registry = Registry(tmp_path_factory.mktemp("registry"))
    version = "20260101T000000000000-testrm00"
    shutil.copytree(tiny_reward_model_dir, registry.model_dir("reward_model", version))
    registry.register("reward_model", version, snapshot_id="snap", recipe={}, metrics={}, parent_model=None)
    return registry, version


@pytest.fixture(scope="module")
def server(registered_rm):
    registry, version = registered_rm
    config = RewardServerConfig(port=0, micro_batch_size=8, max_texts_per_request=64, strip_suffixes=(END,))
    srv = serve_registered_reward_model(registry, version, config, device="cpu").start()
    yield srv
    srv.close()


def post(url: str, body, headers: dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_scores_over_http_equal_in_process_scores(server, registered_rm) -> None:
    from models.labelers.reward_model import RewardModelLabeler

    registry, version = registered_rm
    rows = preference_rows(50, seed=7)
    prompts = [r["prompt"] for r in rows for _ in (0, 1)]
    responses = [x for r in rows for x in (r["chosen"], r["rejected"])]  # 100 texts
    labeler = RewardModelLabeler(registry.model_dir("reward_model", version), device="cpu")
    expected = labeler.rewards([labeler.pair_text(p, r) for p, r in zip(prompts, responses, strict=True)])

    # Ten concurrent /score requests of 10: the scorer thread batches across them.
    def score(start: int) -> list[float]:
        status, body = post(f"{server.url}/score", {"prompts": prompts[start:start + 10], "responses": responses[start:start + 10]})
        assert status == 200, body
        return body["rewards"]

    with ThreadPoolExecutor(10) as pool:
        got = [x for chunk in pool.map(score, range(0, 100, 10)) for x in chunk]
    assert got == pytest.approx(expected, abs=1e-5)

    # OpenRLHF's request: the query is the templated prompt + response + end of turn, the label the plain prompt.
    tokenizer = labeler._tokenizer
    templated = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                 for p in prompts[:20]]
    queries = [t + r + END for t, r in zip(templated, responses[:20], strict=True)]
    status, body = post(f"{server.url}/get_reward", {"query": queries, "prompts": templated, "labels": prompts[:20]})
    assert status == 200, body
    assert body["rewards"] == pytest.approx(expected[:20], abs=1e-5) and body["scores"] == body["rewards"]
    # An empty label (no --data.label_key): the query is scored whole, as OpenRLHF's own server does.
    status, body = post(f"{server.url}/get_reward", {"query": queries[:2], "prompts": templated[:2], "labels": ["", ""]})
    assert status == 200 and body["rewards"] == pytest.approx(labeler.rewards(queries[:2]), abs=1e-5)
    labeler.unload()


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/get_reward", b"{not json", 400, "not JSON"),
        ("/get_reward", {"prompts": ["p"]}, 400, "field 'query' must be a non-empty list"),
        ("/get_reward", {"query": ["a", 3]}, 400, "field 'query'[1] must be a string"),
        ("/get_reward", {"query": ["xy"], "prompts": ["p"], "labels": ["raw"]}, 400, "query[0] does not start with prompts[0]"),
        ("/score", {"prompts": ["p", "q"], "responses": ["r"]}, 400, "send one response per prompt"),
        ("/score", {"prompts": ["p"] * 65, "responses": ["r"] * 65}, 413, "max_texts_per_request=64"),
        ("/nowhere", {}, 404, "use /get_reward or /score"),
    ],
)
def test_malformed_requests_get_a_4xx_naming_the_problem(server, path, body, status, message) -> None:
    got_status, got = post(f"{server.url}{path}", body)
    assert got_status == status and message in got["error"], got


def test_a_request_refused_before_its_body_is_read_does_not_break_a_kept_alive_connection(server) -> None:
    import http.client
    from urllib.parse import urlsplit

    conn = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=30)
    body = json.dumps({"query": ["a response"]})
    for path in ("/nowhere", "/get_reward"):  # 404 unknown route; then one the server reads, kept alive
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        reply.read()
        # The next request on this client must be parsed as a request, not as the unread body's tail.
        conn.request("GET", "/health")
        health = conn.getresponse()
        assert health.status == 200 and json.loads(health.read())["status"] == "ok", path
    assert reply.status == 200 and reply.getheader("Connection") != "close"
    conn.close()


def test_health_names_the_model(server, registered_rm) -> None:
    with urllib.request.urlopen(f"{server.url}/health", timeout=10) as response:
        assert json.loads(response.read()) == {"status": "ok", "model_version": registered_rm[1]}


def test_off_loopback_needs_a_token_and_clients_must_send_it(registered_rm, caplog) -> None:
    with pytest.raises(UserError, match="not loopback and no token"):
        check_bind(RewardServerConfig(host="0.0.0.0"))
    check_bind(RewardServerConfig(host="::1"))  # loopback needs none
    registry, version = registered_rm
    secret = "s3cret-token-value"
    config = RewardServerConfig(port=0, token=secret)
    srv = serve_registered_reward_model(registry, version, config, device="cpu").start()
    body = {"prompts": ["Name one of the colors."], "responses": ["red"]}
    try:
        with caplog.at_level(logging.INFO, logger="juryflow.reward_server"):
            assert post(f"{srv.url}/score", body)[0] == 401
            assert post(f"{srv.url}/score", body, {"Authorization": "Bearer wrong"})[0] == 401
            assert post(f"{srv.url}/score", body, {"Authorization": f"Bearer {secret}"})[0] == 200
            assert post(f"{srv.url}/score?token={secret}", body)[0] == 200  # how OpenRLHF's bare URL carries it
    finally:
        srv.close()
    assert secret not in caplog.text and secret not in repr(config)


def test_serve_reward_cli_refuses_a_public_bind_without_a_token(clean_env) -> None:
    from juryflow.cli import app

    clean_env.delenv("JURYFLOW_REWARD_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["models", "serve-reward", "any-version", "--host", "0.0.0.0"], terminal_width=200)
    assert result.exit_code == 2 and "not loopback and no token" in result.output, result.output


def test_openrlhf_request_parsing() -> None:
    items = parse_openrlhf_request({"query": ["<u>hi<a>yo<|end|><|end|>\n"], "prompts": ["<u>hi<a>"], "labels": ["hi"]},
                                   max_items=4, strip_suffixes=(END,))
    assert [(i.prompt, i.response) for i in items] == [("hi", "yo")]
    assert strip_end("x </s> ", ["</s>"]) == "x"
    with pytest.raises(RequestError, match="as long as 'query'"):
        parse_openrlhf_request({"query": ["a", "b"], "labels": ["x"]}, max_items=4)


def test_closing_a_busy_scorer_with_a_full_queue_returns_and_fails_what_is_queued() -> None:
    import threading

    from models.serving.reward_protocol import ScoreItem
    from models.serving.reward_server import BatchingScorer

    release = threading.Event()

    def stuck_model(items):
        release.wait(30)
        return [1.0] * len(items)

    scorer = BatchingScorer(stuck_model, micro_batch_size=1, max_queued=2)
    running = scorer.submit([ScoreItem(prompt=None, response="x")])
    while scorer._queue.qsize():  # the scorer thread has taken the first job and is stuck in the model
        pass
    queued = [scorer.submit([ScoreItem(prompt=None, response=str(i))]) for i in range(2)]  # the queue is full
    closer = threading.Thread(target=scorer.close)
    closer.start()
    closer.join(timeout=3)
    release.set()
    closer.join(timeout=30)
    assert not closer.is_alive()
    assert running.result(timeout=5) == [1.0]  # the batch being scored finishes
    for future in queued:  # what was still queued is refused, not scored after shutdown
        with pytest.raises(RuntimeError, match="shutting down"):
            future.result(timeout=5)
