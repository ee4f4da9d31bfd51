"""An HTTP server that scores texts with a registered reward model, for OpenRLHF's ``--reward.remote_url``.

    juryflow models serve-reward <reward_model_version> [--port 5000]

The protocol is in ``reward_protocol.py``. Why a stdlib ``ThreadingHTTPServer``: each request
only waits on a queue, so one thread per connection is enough, and it needs nothing beyond
Python. One scorer thread owns the model: it takes queued requests together, up to
``micro_batch_size`` texts a forward pass, because OpenRLHF sends one query per request from
many rollouts at once. The queue is bounded (503 when full), and so are a request's size (413)
and its number of texts (413).

Bound to 127.0.0.1 unless told otherwise; any other address needs a token, which clients send
as ``Authorization: Bearer <token>`` or, since OpenRLHF posts to a bare URL, as ``?token=`` in the
URL. The token is a ``SecretStr``, compared in constant time, and never logged: request lines
are logged without their query string.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, Field, SecretStr

from labeling.errors import UserError
from models.serving.reward_protocol import (
    RequestError,
    ScoreItem,
    TooManyTextsError,
    openrlhf_answer,
    parse_openrlhf_request,
    parse_score_request,
)

logger = logging.getLogger("juryflow.reward_server")


class RewardServerConfig(BaseModel):
    host: str = Field("127.0.0.1", description="address to bind; anything but loopback needs a token")
    port: int = Field(5000, ge=0, le=65535, description="0 picks a free port")
    micro_batch_size: int = Field(32, ge=1, le=4096, description="texts per forward pass")
    max_texts_per_request: int = Field(1024, ge=1, description="larger requests get 413")
    max_request_bytes: int = Field(16 * 1024**2, ge=1024, description="larger bodies get 413")
    max_queued_requests: int = Field(256, ge=1, description="requests waiting to be scored; more get 503")
    request_timeout_s: float = Field(300.0, gt=0, description="a request waiting longer gets 503")
    strip_suffixes: tuple[str, ...] = Field((), description="end-of-turn tokens cut from OpenRLHF responses")
    token: SecretStr | None = Field(None, description="required from clients when set; required to bind off loopback")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(config: RewardServerConfig) -> None:
    """Refuse to serve a model off loopback without a token."""
    if not is_loopback(config.host) and not (config.token and config.token.get_secret_value()):
        raise UserError(
            f"reward server host {config.host!r} is not loopback and no token is set: set JURYFLOW_REWARD_TOKEN "
            "(clients send it as 'Authorization: Bearer ...' or ?token=...), or bind 127.0.0.1"
        )


@dataclass
class _Job:
    items: list[ScoreItem]
    future: Future = field(default_factory=Future)


class BatchingScorer:
    """Scores items on one thread (the only one that touches the model and tokenizer, which are not
    thread-safe), gathering queued requests into micro-batches."""

    def __init__(self, score_items: Callable[[list[ScoreItem]], list[float]], micro_batch_size: int, max_queued: int):
        self._score_items = score_items
        self._micro_batch_size = micro_batch_size
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queued)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reward-scorer", daemon=True)
        self._thread.start()

    def submit(self, items: list[ScoreItem]) -> Future:
        """A future of the items' rewards; raises ``queue.Full`` when the queue is at its bound."""
        job = _Job(items)
        self._queue.put_nowait(job)
        return job.future

    def close(self) -> None:
        """Stop after the batch being scored; requests still queued get an error, not a hang."""
        self._closing.set()
        try:  # wakes an idle scorer; a full queue means it is busy and sees _closing after its batch
            self._queue.put(None, timeout=1)
        except queue.Full:
            pass
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                self._fail_queued(RuntimeError("the reward server is shutting down"))
                return
            jobs, n_texts = [job], len(job.items)
            while n_texts < self._micro_batch_size:  # gather what is already waiting, never wait for more
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # close after this batch
                    break
                jobs.append(more)
                n_texts += len(more.items)
            self._score(jobs)
            if self._closing.is_set():
                self._fail_queued(RuntimeError("the reward server is shutting down"))
                return

    def _fail_queued(self, exc: Exception) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.future.set_exception(exc)

    def _score(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            rewards = []
            for start in range(0, len(items), self._micro_batch_size):
                rewards.extend(self._score_items(items[start : start + self._micro_batch_size]))
        except Exception as exc:  # handed to every waiting request, which answers 500 with it
            for job in jobs:
                job.future.set_exception(exc)
            return
        offset = 0
        for job in jobs:
            job.future.set_result(rewards[offset : offset + len(job.items)])
            offset += len(job.items)


class RewardModelScorer:
    """A registered reward model's formatting and scoring, as the AI labeler does both."""

    def __init__(self, model_dir: str, micro_batch_size: int, device: str = "auto"):
        from models.labelers.reward_model import RewardModelLabeler

        # The labeler's batch_size counts pairs (two texts each); the server's micro-batch counts texts.
        self.labeler = RewardModelLabeler(model_dir, batch_size=max(1, micro_batch_size // 2), device=device)
        self.labeler.load()

    def text(self, item: ScoreItem) -> str:
        return item.response if item.prompt is None else self.labeler.pair_text(item.prompt, item.response)

    def score(self, items: list[ScoreItem]) -> list[float]:
        return self.labeler.rewards([self.text(item) for item in items])


class RewardServer:
    """The HTTP server around a scorer; ``start()`` serves on a thread, ``serve_forever()`` in the caller's."""

    def __init__(self, config: RewardServerConfig, score_items: Callable[[list[ScoreItem]], list[float]],
                 model_version: str):
        check_bind(config)
        self.config = config
        self.model_version = model_version
        self.scorer = BatchingScorer(score_items, config.micro_batch_size, config.max_queued_requests)
        self.httpd = ThreadingHTTPServer((config.host, config.port), _handler_class(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RewardServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="reward-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()
        self.scorer.close()

    def rewards(self, items: Sequence[ScoreItem]) -> list[float]:
        """Rewards for parsed items; raises ``queue.Full`` or ``TimeoutError`` when the server is saturated."""
        future = self.scorer.submit(list(items))
        return future.result(timeout=self.config.request_timeout_s)

    def authorized(self, headers: Any, path: str) -> bool:
        if self.config.token is None:
            return True
        expected = self.config.token.get_secret_value().encode()
        bearer = headers.get("Authorization", "")
        offered = bearer.removeprefix("Bearer ").strip() if bearer.startswith("Bearer ") else ""
        if not offered:
            offered = (parse_qs(urlsplit(path).query).get("token") or [""])[0]
        return hmac.compare_digest(offered.encode(), expected)


def _handler_class(server: RewardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: OpenRLHF opens a session per request, others may reuse
        routes = {"/get_reward": "openrlhf", "/score": "score"}

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if urlsplit(self.path).path != "/health":
                return self._error(HTTPStatus.NOT_FOUND, f"no GET {urlsplit(self.path).path}: use GET /health")
            self._send(HTTPStatus.OK, {"status": "ok", "model_version": server.model_version})

        def do_POST(self) -> None:  # noqa: N802
            route = self.routes.get(urlsplit(self.path).path)
            if route is None:
                return self._refuse(HTTPStatus.NOT_FOUND, f"no POST {urlsplit(self.path).path}: use /get_reward or /score")
            if not server.authorized(self.headers, self.path):
                return self._refuse(HTTPStatus.UNAUTHORIZED, "missing or wrong token: send 'Authorization: Bearer <token>'")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._refuse(HTTPStatus.LENGTH_REQUIRED, "request needs a Content-Length header")
            if int(length) > server.config.max_request_bytes:
                return self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes is over "
                                    f"max_request_bytes={server.config.max_request_bytes}: split the request")
            try:
                body = json.loads(self.rfile.read(int(length)) or b"null")
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return self._error(HTTPStatus.BAD_REQUEST, f"request body is not JSON: {exc}")
            max_items = server.config.max_texts_per_request
            try:
                if route == "openrlhf":
                    items = parse_openrlhf_request(body, max_items, server.config.strip_suffixes)
                else:
                    items = parse_score_request(body, max_items)
            except TooManyTextsError as exc:
                return self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
            except RequestError as exc:
                return self._error(HTTPStatus.BAD_REQUEST, str(exc))
            try:
                rewards = server.rewards(items)
            except (queue.Full, TimeoutError):
                return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "reward server is at its queue bound: retry shortly")
            except Exception as exc:  # a scoring failure is answered, and logged with its traceback
                logger.exception("scoring failed")
                return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"scoring failed: {type(exc).__name__}: {exc}")
            self._send(HTTPStatus.OK, openrlhf_answer(rewards) if route == "openrlhf" else {"rewards": rewards})

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, {"error": message})

        def _refuse(self, status: HTTPStatus, message: str) -> None:
            # Refused before its body was read: on a kept-alive connection the unread body would be
            # parsed as the next request, so this connection ends with the reply.
            self.close_connection = True
            self._error(status, message)

        def _send(self, status: HTTPStatus, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                self.send_header("Retry-After", "1")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            # The request line may carry ?token=...: log the method and path only.
            logger.info("%s %s %s", self.command, urlsplit(self.path).path, args[1] if len(args) > 1 else "")

    return Handler


def serve_registered_reward_model(registry: Any, version: str, config: RewardServerConfig,
                                  device: str = "auto") -> RewardServer:
    """A server (not yet started) for a registered reward-model version."""
    registry.get("reward_model", version)  # a KeyError naming the known versions when unknown
    scorer = RewardModelScorer(str(registry.model_dir("reward_model", version)), config.micro_batch_size, device)
    return RewardServer(config, scorer.score, model_version=version)
