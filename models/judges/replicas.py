"""A pool of identical judge servers: spreading, a per-server bound, failover and health.

vLLM scales a served model by data parallelism: several `vllm serve` replicas of one model, each
on its own GPU (or tensor-parallel group). ``ServerPool.run(call)`` decides which replica answers
one request:

- **spreading**: the healthy server with the fewest requests in flight (ties go round the list);
- **bound**: at most ``per_server`` requests in flight on one server; a request waits for a slot;
- **failover**: ``call`` raises ``ServerUnavailableError`` when its server is down, refusing or
  overloaded; the request then goes to a server it has not failed on yet, and the failed server
  is marked down;
- **health**: a down server gets no requests for a cool-down (``cooldown_s``, doubling with each
  failure in a row up to ``max_cooldown_s``); then the next caller runs ``probe(server)`` (a
  cheap health check) and a server that answers takes requests again. Only an answered request
  ends the run of failures. A dead server is never dropped for good: a restarted replica is back
  after its cool-down.

A request fails once every server has failed it, failed its health check or is cooling down after
failing another request, with one line naming each URL. Any other exception (a wrong key, a
missing model) is the same on every replica and is raised at once. A request whose server died
before answering is sent again elsewhere; judge requests are read-only and greedy, so sending one
twice is harmless, and each request returns exactly one answer. With a single server there is nowhere to fail over to: its error is raised as
it is, and the server is never marked down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class JudgeServerError(RuntimeError):
    """A judge server could not be used; the message says how to fix it."""


class ServerUnavailableError(JudgeServerError):
    """This server cannot answer now (down, refusing, overloaded); another replica may.

    ``reason`` is a few words for the all-servers-failed line, e.g. ``HTTP 503``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class AllServersFailedError(JudgeServerError):
    """Every server of the pool failed one request."""


@dataclass(eq=False)
class Server:
    """One replica and its live state; the pool's lock guards every field but ``url``/``client``."""

    url: str
    client: Any  # whatever ``call`` and ``probe`` need to reach it (an openai client)
    in_flight: int = 0
    served: int = 0  # requests answered
    failures: int = 0  # failures in a row: the next cool-down is cooldown_s * 2**(failures-1)
    down_until: float | None = None  # None: healthy
    down_reason: str = ""
    probing: bool = False
    last_pick: int = 0


class ServerPool:
    """Thread-safe: many worker threads call ``run`` at once; see the module docstring."""

    def __init__(
        self,
        servers: Sequence[Server],
        per_server: int,
        probe: Callable[[Server], bool],
        cooldown_s: float = 1.0,
        max_cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not servers:
            raise ValueError("ServerPool needs at least one server")
        urls = [s.url for s in servers]
        if len(set(urls)) != len(urls):
            raise ValueError(f"ServerPool servers {urls}: a URL is listed twice; list each replica once")
        if per_server < 1:
            raise ValueError(f"ServerPool per_server={per_server}: must be >= 1")
        self.servers = list(servers)
        self.per_server = per_server
        self._probe = probe
        self._cooldown_s = cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._clock = clock
        self._cond = threading.Condition()
        self._picks = 0

    @property
    def capacity(self) -> int:
        """Requests the pool runs at once when every server is healthy."""
        return self.per_server * len(self.servers)

    def served(self) -> dict[str, int]:
        """Requests answered so far, per server URL."""
        with self._cond:
            return {s.url: s.served for s in self.servers}

    def run(self, call: Callable[[Server], T]) -> T:
        """``call(server)`` on a free healthy server, moved to another when it is unavailable."""
        failed: dict[str, str] = {}  # url -> why it failed this request
        while True:
            server = self._acquire(failed)
            try:
                result = call(server)
            except ServerUnavailableError as exc:
                self._release(server, exc, answered=False)
                if len(self.servers) == 1:
                    raise
                failed[server.url] = exc.reason
            except BaseException:
                self._release(server, None, answered=False)
                raise
            else:
                self._release(server, None)
                return result
            if len(failed) == len(self.servers):
                raise self._all_failed(failed)

    def _acquire(self, failed: dict[str, str]) -> Server:
        while True:
            with self._cond:
                server, probe = self._pick_or_wait(failed)
            if not probe:
                return server
            answered = self._probe(server)  # outside the lock: a health check may take seconds
            with self._cond:
                server.probing = False
                if answered:
                    # Back in the pool, but still on probation: only an answered request resets
                    # the failure count, so a server that passes its health check and then fails
                    # its requests keeps doubling its cool-down.
                    server.down_until = None
                    log.info("judge server %s answers its health check again: back in the pool", server.url)
                else:
                    self._mark_down(server, "no answer to its health check")
                    failed[server.url] = "no answer to its health check"
                self._cond.notify_all()
            if len(failed) == len(self.servers):
                raise self._all_failed(failed)

    def _pick_or_wait(self, failed: dict[str, str]) -> tuple[Server, bool]:
        """(server, False): a slot is taken on it; (server, True): the caller must probe it."""
        while True:
            now = self._clock()
            candidates = [s for s in self.servers if s.url not in failed]
            cooling = [s for s in candidates if s.down_until is not None and not s.probing]
            due = [s for s in cooling if s.down_until <= now]
            if due:  # checked first, even when others are free: a replica that is back takes its share
                due[0].probing = True
                return due[0], True
            free = [s for s in candidates if s.down_until is None and s.in_flight < self.per_server]
            if free:
                server = min(free, key=lambda s: (s.in_flight, s.last_pick))
                self._picks += 1
                server.in_flight, server.last_pick = server.in_flight + 1, self._picks
                return server, False
            if cooling and len(cooling) == len(candidates):
                # Every server this request may still use is cooling down: fail now with each one's
                # reason rather than wait out cool-downs (the task's retries come back later).
                failed.update({s.url: s.down_reason for s in cooling})
                raise self._all_failed(failed)
            # Woken by a release or a probe's end; or, at the latest, when a cool-down ends.
            self._cond.wait(timeout=min((s.down_until - now for s in cooling), default=None))

    def _release(self, server: Server, error: ServerUnavailableError | None, answered: bool = True) -> None:
        with self._cond:
            server.in_flight -= 1
            if answered:
                server.served += 1
                server.failures = 0
            elif error is not None and len(self.servers) > 1:
                self._mark_down(server, error.reason)
            self._cond.notify_all()

    def _mark_down(self, server: Server, reason: str) -> None:
        now = self._clock()
        if server.down_until is not None and now < server.down_until:
            return  # already down: the other requests that were in flight on it fail too
        server.failures += 1
        server.down_reason = reason
        wait = min(self._cooldown_s * 2 ** (server.failures - 1), self._max_cooldown_s)
        server.down_until = now + wait
        log.warning(
            "judge server %s is unavailable (%s): its requests go to the other servers; checking it again in %.1f s",
            server.url, reason, wait,
        )  # fmt: skip

    def _all_failed(self, failed: dict[str, str]) -> AllServersFailedError:
        each = "; ".join(f"{url}: {reason}" for url, reason in failed.items())
        return AllServersFailedError(
            f"all {len(self.servers)} judge servers failed one request ({each}). "
            "Check that they are up and that judge.base_url lists them"
        )
