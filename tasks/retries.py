"""Which task failures are worth a retry: only transient ones.

A mistyped path, a bad setting or a bug fails the same way every time, so retrying it only
delays the answer (a missing input file used to take 3 retries and 40 s of backoff). Used as
``@task(retries=..., retry_condition_fn=retry_transient)``; Prefect calls it with the failed state.
"""

from __future__ import annotations

from typing import Any

from labeling.errors import TransientError, UserError

# Built-in connection trouble; OSError as a whole is not here: FileNotFoundError is a user's mistake.
_BUILTIN_TRANSIENT: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, TransientError)


def _library_transient() -> tuple[type[BaseException], ...]:
    """Transient errors of the libraries we talk to servers through, imported only when a task failed."""
    found: list[type[BaseException]] = []
    try:  # a locked SQLite file, a restarting PostgreSQL, an exhausted pool
        from sqlalchemy import exc as sa_exc

        found += [sa_exc.OperationalError, sa_exc.DisconnectionError, sa_exc.TimeoutError]
    except ImportError:
        pass
    try:  # connect/read timeouts, refused or reset connections
        import httpx

        found.append(httpx.TransportError)
    except ImportError:
        pass
    try:
        import openai

        found += [openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError]
    except ImportError:
        pass
    from labeling.labelstudio.client import LabelStudioUnavailable

    found.append(LabelStudioUnavailable)
    return tuple(found)


def is_transient(exc: BaseException) -> bool:
    """True for trouble a retry can fix, looking through the chain of causes; never for a user's mistake."""
    transient = _BUILTIN_TRANSIENT + _library_transient()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return False
        if isinstance(current, transient):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's ``retry_condition_fn``: retry the failed run only when its exception is transient."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the failure itself is what we classify
        return is_transient(exc)
    return False
