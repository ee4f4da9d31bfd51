"""A constitutional judge behind an OpenAI-compatible completions server (e.g. `vllm serve`).

``OpenAIEngine`` sends each prompt to ``<base_url>/completions`` with ``max_tokens=1``,
``temperature=0`` and ``logprobs=<top_logprobs>``, through the ``openai`` client, and reads
P(slot A) from the top log-probs of that one token. The server must return log-probs: for vLLM
start it with ``--max-logprobs`` at least ``top_logprobs``. A verdict letter outside the top
``top_logprobs`` counts as probability 0 (see ``verdict_probability``); raise ``top_logprobs`` (and
the server's ``--max-logprobs``) if the judge model puts the letters low.

Transport: the ``openai`` client times out each request after ``timeout_s`` and retries it up to
``max_retries`` times on connection errors, 408, 409, 429 and 5xx, with exponential backoff and
jitter, waiting as long as the server's ``Retry-After`` asks (up to two minutes). That is a
per-request retry, as HTTP clients do; whole-task retries stay in the Prefect decorator.

Several servers: ``base_url`` may list several replicas of one model (vLLM data parallelism).
``models.judges.replicas.ServerPool`` spreads the requests over them, at most ``max_concurrency``
in flight per server, and moves a request to another server when its own is down or overloaded;
see that module. With several servers a request is retried at most once on the same server before
it moves: a dead server refuses at once, and five retries with backoff (about 15 s) would stall its
share of the batch while the other replicas idle. A down server is health-checked with
``GET /models`` after a cool-down and rejoins the pool when it answers.

The API key is a ``SecretStr`` handed to the client (which redacts it from its own logs) only as
the Bearer header; it is never in our logs, errors or reprs, and a server that quotes it back in
an error body is redacted too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from labeling.constitution import Constitution
from models.judges.constitutional import ConstitutionalJudge
from models.judges.engine import JudgeEngine, SlotScore
from models.judges.prompting import VerdictParseError, verdict_probability
from models.judges.replicas import JudgeServerError, Server, ServerPool, ServerUnavailableError

__all__ = ["JudgeServerError", "LogprobsUnsupportedError", "OpenAICompatibleJudge", "OpenAIEngine"]

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}  # what the openai client retries (and any 5xx)
# Statuses a retry cannot fix, with what to check.
FATAL_STATUS = {401: "check judge.api_key", 403: "check judge.api_key", 404: "check judge.base_url and judge.model"}
HEALTH_TIMEOUT_S = 5.0  # a replica that cannot list its models in 5 s is not ready for verdicts


class LogprobsUnsupportedError(JudgeServerError):
    """The server answered without log-probs, so no verdict probability can be read."""


class OpenAIEngine(JudgeEngine):
    """Completions over HTTP on one or several servers; see the module docstring."""

    name = "openai"

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        api_key: SecretStr | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        top_logprobs: int = 20,
        cooldown_s: float = 1.0,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"OpenAICompatibleJudge max_concurrency={max_concurrency}: must be >= 1")
        if max_retries < 0:
            raise ValueError(f"OpenAICompatibleJudge max_retries={max_retries}: must be >= 0")
        if top_logprobs < 1:
            raise ValueError(f"OpenAICompatibleJudge top_logprobs={top_logprobs}: must be >= 1")
        if api_key is not None and not isinstance(api_key, SecretStr):
            raise TypeError("OpenAICompatibleJudge api_key must be a pydantic SecretStr, so it is never printed")
        urls = (base_url,) if isinstance(base_url, str) else tuple(base_url)
        self.base_urls = tuple(url.rstrip("/") for url in urls)
        if not self.base_urls or len(set(self.base_urls)) != len(self.base_urls):
            raise ValueError(f"OpenAICompatibleJudge base_url={list(urls)}: give one or more distinct server URLs")
        self.model_name = model
        self._api_key = api_key
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.top_logprobs = top_logprobs
        self.cooldown_s = cooldown_s
        self.pool: ServerPool | None = None
        self._extra_headers: dict[str, Any] = {}

    def __repr__(self) -> str:
        urls = self.base_urls[0] if len(self.base_urls) == 1 else list(self.base_urls)
        return f"OpenAIEngine(base_url={urls!r}, model={self.model_name!r})"

    @property
    def identity(self) -> tuple[str, tuple[str, ...], str]:
        return (self.name, self.base_urls, self.model_name)

    @property
    def retries_per_server(self) -> int:
        # Several replicas: the next server is the retry (module docstring).
        return self.max_retries if len(self.base_urls) == 1 else min(self.max_retries, 1)

    def load(self) -> None:
        if self.pool is not None:
            return
        import openai

        secret = self._api_key.get_secret_value() if self._api_key is not None else ""
        # A callable key, so the client never falls back to $OPENAI_API_KEY (which must not go to
        # some other server); without a key we send no Authorization header at all.
        servers = [
            Server(url, openai.OpenAI(
                base_url=url, api_key=lambda: secret, timeout=self.timeout_s, max_retries=self.retries_per_server
            ))
            for url in self.base_urls
        ]  # fmt: skip
        self._extra_headers = {} if secret else {"Authorization": openai.omit}
        self.pool = ServerPool(servers, self.max_concurrency, self._answers_health_check, self.cooldown_s)

    def unload(self) -> None:
        if self.pool is not None:
            for server in self.pool.servers:
                server.client.close()
            self.pool = None

    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        params = {"max_tokens": 1, "temperature": 0, "logprobs": self.top_logprobs}
        return self._map(lambda server, prompt: self._score(server, self._complete(server, prompt, params)), prompts)

    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        def one(server: Server, job: tuple[str, int]) -> str | VerdictParseError:
            completion = self._complete(server, job[0], {"max_tokens": job[1], "temperature": 0})
            return completion if isinstance(completion, VerdictParseError) else str(completion.choices[0].text or "")

        return self._map(one, list(zip(prompts, max_tokens)))

    def _map(self, fn: Any, jobs: Sequence[Any]) -> list[Any]:
        self.load()
        pool = self.pool
        if not jobs:
            return []
        # An error that no server can get past is fatal for the batch: the queued rest is then
        # skipped, not sent and retried.
        failed = threading.Event()

        def guarded(job: Any) -> Any:
            if failed.is_set():
                return None
            try:
                return pool.run(lambda server: fn(server, job))
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=min(pool.capacity, len(jobs))) as workers:
            futures = [workers.submit(guarded, job) for job in jobs]
            return [f.result() for f in futures]  # in order; the first error propagates

    def _answers_health_check(self, server: Server) -> bool:
        """``GET /models``: any HTTP answer means the server is up (a wrong key shows on the real request)."""
        import openai

        try:
            server.client.with_options(max_retries=0, timeout=min(self.timeout_s, HEALTH_TIMEOUT_S)).models.list(
                extra_headers=self._extra_headers
            )
        except openai.APIStatusError:
            return True
        except openai.APIConnectionError:
            return False
        return True

    def _score(self, server: Server, completion: Any) -> SlotScore:
        if isinstance(completion, VerdictParseError):
            return completion
        logprobs = completion.choices[0].logprobs if completion.choices else None
        top = (logprobs.top_logprobs if logprobs is not None else None) or []
        if not top or not top[0]:
            raise LogprobsUnsupportedError(
                f"the server at {server.url}/completions (model {self.model_name!r}) returned no log-probs for "
                f"`logprobs={self.top_logprobs}`, so the judge cannot read a verdict probability. Use a server "
                f"that supports completion log-probs: start vLLM with `vllm serve <model> --max-logprobs "
                f"{max(self.top_logprobs, 20)}`, or pick the `vllm`/`transformers` judge backend"
            )
        try:
            return verdict_probability({str(t): float(lp) for t, lp in top[0].items()})
        except VerdictParseError as exc:
            return VerdictParseError(f"{exc} (top {self.top_logprobs} log-probs; raise top_logprobs to see more)")

    def _complete(self, server: Server, prompt: str, params: dict[str, Any]) -> Any:
        """One completion (the client retries it); a per-prompt 4xx is returned as an error, not raised."""
        import openai

        url, attempts = f"{server.url}/completions", self.retries_per_server + 1
        try:
            return server.client.completions.create(
                model=self.model_name, prompt=prompt, extra_headers=self._extra_headers, **params
            )
        except openai.APIConnectionError as exc:  # connect/read timeouts, refused, reset
            raise ServerUnavailableError(
                f"POST {url} failed after {attempts} attempts: {type(exc).__name__}: "
                f"{self._redact(str(exc))}. Check that the server is up and judge.base_url is right",
                reason=type(exc).__name__,
            ) from None
        except openai.APIStatusError as exc:
            status, detail = exc.status_code, self._redact(exc.response.text)[:300]
        # Raised outside the except block: chained to the SDK's error, whose message quotes the server's
        # echo of the key, every traceback (stderr, Prefect's flow-run logs) would repeat it.
        return self._status_error(url, status, detail, attempts)

    def _status_error(self, url: str, status: int, detail: str, attempts: int) -> VerdictParseError:
        if status in FATAL_STATUS:
            raise JudgeServerError(f"POST {url} -> HTTP {status}: {detail} ({FATAL_STATUS[status]})")
        if status in RETRY_STATUS or status >= 500:
            raise ServerUnavailableError(
                f"POST {url} -> HTTP {status} after {attempts} attempts: {detail}. "
                "The server is overloaded or failing: lower judge.max_concurrency or check the server",
                reason=f"HTTP {status}",
            )
        if "logprobs" in detail.lower():
            raise LogprobsUnsupportedError(
                f"POST {url} -> HTTP {status}: {detail}. The server refuses "
                f"`logprobs={self.top_logprobs}`: start vLLM with `--max-logprobs {self.top_logprobs}` "
                "or lower top_logprobs"
            )
        # Other 4xx (e.g. a prompt longer than the context): this prompt fails, the batch carries on.
        return VerdictParseError(f"server rejected the prompt: HTTP {status}: {detail}")

    def _redact(self, text: str) -> str:
        # Servers may echo the key back in an error ("Incorrect API key provided: sk-..."), and the
        # detail goes into exceptions, Prefect run states and logs: never repeat it.
        secret = self._api_key.get_secret_value() if self._api_key is not None else ""
        return text.replace(secret, "[redacted judge.api_key]") if secret else text


class OpenAICompatibleJudge(ConstitutionalJudge):
    """The constitutional recipe on an ``OpenAIEngine`` (one server URL, or several replicas)."""

    engine: OpenAIEngine

    def __init__(
        self,
        base_url: str | Sequence[str],
        model: str,
        api_key: SecretStr | None = None,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
        constitution: Constitution | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        top_logprobs: int = 20,
        cooldown_s: float = 1.0,
    ) -> None:
        engine = OpenAIEngine(
            base_url, model, api_key, max_concurrency, timeout_s, max_retries, top_logprobs, cooldown_s
        )
        super().__init__(engine, template_path, critique, principle_sample_k, constitution)
