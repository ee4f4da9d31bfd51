"""A constitutional judge behind an OpenAI-compatible completions server (e.g. `vllm serve`).

We POST each prompt to ``<base_url>/completions`` with ``max_tokens=1``, ``temperature=0`` and
``logprobs=<top_logprobs>``, and read P(slot A) from the top log-probs of that one token. The
server must return log-probs: for vLLM start it with ``--max-logprobs`` at least ``top_logprobs``.
A verdict letter outside the top ``top_logprobs`` counts as probability 0 (see
``verdict_probability``); raise ``top_logprobs`` (and the server's ``--max-logprobs``) if the judge
model puts the letters low.

Requests run in a thread pool of ``max_concurrency`` workers sharing one connection pool, so
the server sees at most that many requests at once. Each request is retried with exponential
backoff on 429, 5xx and connection errors (a per-request client retry, as HTTP clients do;
whole-task retries stay in the Prefect decorator). The API key is a ``SecretStr`` sent only as a
Bearer header; it is never logged and never appears in errors or reprs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from models.judges.prompting import VerdictParseError, verdict_probability
from models.judges.scored import ScoredJudge, SlotScore

log = logging.getLogger(__name__)

RETRY_STATUS = {429, 500, 502, 503, 504}
# Statuses that mean the judge is misconfigured for every request (wrong key, model or URL).
# Statuses a retry cannot fix, with what to check.
FATAL_STATUS = {401: "check judge.api_key", 403: "check judge.api_key", 404: "check judge.base_url and judge.model"}


class JudgeServerError(RuntimeError):
    """The completions server could not be used; the message says how to fix it."""


class LogprobsUnsupportedError(JudgeServerError):
    """The server answered without log-probs, so no verdict probability can be read."""


class OpenAICompatibleJudge(ScoredJudge):
    """``Judge`` over HTTP; see the module docstring for the request, retries and concurrency."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None = None,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        top_logprobs: int = 20,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(template_path, critique, principle_sample_k)
        if max_concurrency < 1:
            raise ValueError(f"OpenAICompatibleJudge max_concurrency={max_concurrency}: must be >= 1")
        if max_retries < 0:
            raise ValueError(f"OpenAICompatibleJudge max_retries={max_retries}: must be >= 0")
        if top_logprobs < 1:
            raise ValueError(f"OpenAICompatibleJudge top_logprobs={top_logprobs}: must be >= 1")
        if api_key is not None and not isinstance(api_key, SecretStr):
            raise TypeError("OpenAICompatibleJudge api_key must be a pydantic SecretStr, so it is never printed")
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self._api_key = api_key
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.top_logprobs = top_logprobs
        self.backoff_s = backoff_s
        self._client: Any = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleJudge(base_url={self.base_url!r}, model={self.model_name!r})"

    @property
    def completions_url(self) -> str:
        return f"{self.base_url}/completions"

    def load(self) -> None:
        if self._client is not None:
            return
        import httpx

        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency),
        )

    def unload(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        payload = {"max_tokens": 1, "temperature": 0, "logprobs": self.top_logprobs}
        return self._map(lambda prompt: self._score(self._complete(prompt, payload)), prompts)

    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        def one(job: tuple[str, int]) -> str | VerdictParseError:
            body = self._complete(job[0], {"max_tokens": job[1], "temperature": 0})
            return body if isinstance(body, VerdictParseError) else str(body["choices"][0].get("text") or "")

        return self._map(one, list(zip(prompts, max_tokens)))

    def _map(self, fn: Any, jobs: Sequence[Any]) -> list[Any]:
        self.load()
        if not jobs:
            return []
        # A server error is fatal for the batch: the queued rest is then skipped, not sent and retried.
        failed = threading.Event()

        def guarded(job: Any) -> Any:
            if failed.is_set():
                return None
            try:
                return fn(job)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(jobs))) as pool:
            futures = [pool.submit(guarded, job) for job in jobs]
            return [f.result() for f in futures]  # in order; the first error propagates

    def _score(self, body: dict[str, Any] | VerdictParseError) -> SlotScore:
        if isinstance(body, VerdictParseError):
            return body
        logprobs = (body.get("choices") or [{}])[0].get("logprobs") or {}
        top = logprobs.get("top_logprobs") or []
        if not top or not top[0]:
            raise LogprobsUnsupportedError(
                f"the server at {self.completions_url} (model {self.model_name!r}) returned no log-probs for "
                f"`logprobs={self.top_logprobs}`, so the judge cannot read a verdict probability. Use a server "
                f"that supports completion log-probs: start vLLM with `vllm serve <model> --max-logprobs "
                f"{max(self.top_logprobs, 20)}`, or pick the `vllm`/`transformers` judge backend"
            )
        try:
            return verdict_probability({str(t): float(lp) for t, lp in top[0].items()})
        except VerdictParseError as exc:
            return VerdictParseError(f"{exc} (top {self.top_logprobs} log-probs; raise top_logprobs to see more)")

    def _complete(self, prompt: str, params: dict[str, Any]) -> dict[str, Any] | VerdictParseError:
        """One completion, retried on 429/5xx/connection errors; a per-prompt 4xx is returned, not raised."""
        import httpx

        payload = {"model": self.model_name, "prompt": prompt, **params}
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._client.post(self.completions_url, json=payload)
            except httpx.TransportError as exc:  # connect/read timeouts, refused, reset
                if last:
                    raise JudgeServerError(
                        f"POST {self.completions_url} failed after {attempt + 1} attempts: "
                        f"{type(exc).__name__}: {exc}. Check that the server is up and judge.base_url is right"
                    ) from None
                self._sleep(attempt, None, f"{type(exc).__name__}")
                continue
            if response.status_code in RETRY_STATUS and not last:
                self._sleep(attempt, response.headers.get("retry-after"), f"HTTP {response.status_code}")
                continue
            return self._body(response, attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _body(self, response: Any, attempt: int) -> dict[str, Any] | VerdictParseError:
        status = response.status_code
        if status == 200:
            return response.json()
        detail = self._redact(response.text)[:300]
        if status in FATAL_STATUS:
            raise JudgeServerError(f"POST {self.completions_url} -> HTTP {status}: {detail} ({FATAL_STATUS[status]})")
        if status in RETRY_STATUS:
            raise JudgeServerError(
                f"POST {self.completions_url} -> HTTP {status} after {attempt + 1} attempts: {detail}. "
                "The server is overloaded or failing: lower judge.max_concurrency or check the server"
            )
        if "logprobs" in detail.lower():
            raise LogprobsUnsupportedError(
                f"POST {self.completions_url} -> HTTP {status}: {detail}. The server refuses "
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

    def _sleep(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = self.backoff_s * 2**attempt
        if retry_after is not None and retry_after.replace(".", "", 1).isdigit():
            delay = max(delay, float(retry_after))
        log.info("judge server %s: %s, retry %d/%d in %.2fs", self.base_url, why, attempt + 1, self.max_retries, delay)
        time.sleep(delay)
