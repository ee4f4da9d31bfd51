"""A real HTTP completions server on 127.0.0.1 (http.server in a thread) for the OpenAI judge tests.

It scores like a judge would: P(slot A) is high when the text in the RESPONSE A block is marked
``[good]``, so the swapped-order mapping is checked end to end. ``ServerScript`` says what it does
(fail, delay, drop connections like a killed process); the tests set it and read its counters.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ServerScript:
    """What the test server does; the handler reads it, tests set it."""

    fail_first: int = 0  # answer 503 to this many requests first
    fail_status: int = 503
    with_logprobs: bool = True
    delay_s: float = 0.0
    retry_after: str | None = None  # the Retry-After header sent with the failures
    dead: bool = False  # close every connection without an answer, as a killed server does
    die_after: int | None = None  # turn dead once this many completions were answered
    requests: int = 0
    answered: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    auth_headers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _slot_a_is_good(prompt: str) -> bool:
    block = prompt.split("<<<RESPONSE A", 1)[1].split("RESPONSE A>>>", 1)[0]
    return "[good]" in block


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        script = self.server.script  # type: ignore[attr-defined]
        if script.dead:
            self.close_connection = True
            return
        if self.path != "/v1/models":
            return self._send(404, {"error": f"no route {self.path}"})
        self._send(200, {"object": "list", "data": [{"id": "tiny-judge", "object": "model", "owned_by": "test"}]})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        script = self.server.script  # type: ignore[attr-defined]
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._left = False  # one handler serves every request of a keep-alive connection
        with script.lock:
            script.requests += 1
            nth = script.requests
            script.in_flight += 1
            script.max_in_flight = max(script.max_in_flight, script.in_flight)
            script.auth_headers.append(self.headers.get("Authorization", ""))
        try:
            time.sleep(script.delay_s)
            if script.dead:
                self.close_connection = True  # no status line: the client sees the server disconnect
                return
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
            with script.lock:
                script.answered += 1
                if script.die_after is not None and script.answered >= script.die_after:
                    script.dead = True
        finally:
            self._leave_flight()

    def _leave_flight(self) -> None:
        # Before the reply is written: once the client has its answer it may send the next request, and
        # counting this one until after the write would show one more in flight than the client allows.
        if not self._left:
            self._left = True
            with self.server.script.lock:  # type: ignore[attr-defined]
                self.server.script.in_flight -= 1  # type: ignore[attr-defined]

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        if self.command == "POST":
            self._leave_flight()
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def completions_server(script: ServerScript | None = None) -> Iterator[tuple[str, ServerScript]]:
    """(base URL ending in /v1, its script) for a server that runs until the block ends."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.script = script or ServerScript()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd.script  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
