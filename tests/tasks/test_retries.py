"""Only transient failures are retried; a user's mistake fails at once."""

from __future__ import annotations

import time

import pytest
from prefect import flow, task

from labeling.errors import TransientError, UserError
from labeling.settings import SettingsError
from tasks.retries import is_transient


@pytest.mark.parametrize("exc", [ConnectionRefusedError("refused"), TimeoutError("slow"), TransientError("restart")])
def test_connection_trouble_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


def test_a_locked_sqlite_file_is_transient() -> None:
    from sqlalchemy.exc import OperationalError

    assert is_transient(OperationalError("INSERT ...", {}, Exception("database is locked")))


@pytest.mark.parametrize("exc", [FileNotFoundError("in.jsonl"), UserError("no model"), SettingsError("bad"),
                                 ValueError("bug"), KeyError("bug")])
def test_mistakes_and_bugs_are_not_transient(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_a_user_error_caused_by_a_timeout_is_still_the_users() -> None:
    try:
        try:
            raise TimeoutError("slow")
        except TimeoutError as inner:
            raise UserError("labelstudio.url is unreachable: set it") from inner
    except UserError as exc:
        assert not is_transient(exc)


def test_a_wrapped_transient_cause_is_found() -> None:
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("judge call failed") from inner
    except RuntimeError as exc:
        assert is_transient(exc)


def test_tasks_retry_only_transient_failures(prefect_harness) -> None:
    from tasks.retries import retry_transient

    calls = {"user": 0, "transient": 0}

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient)
    def fails(kind: str) -> None:
        calls[kind] += 1
        raise UserError("input_path 'x' does not exist") if kind == "user" else TransientError("locked")

    @flow
    def run(kind: str) -> None:
        fails(kind)

    started = time.monotonic()
    for kind in calls:
        with pytest.raises((UserError, TransientError)):
            run(kind)
    assert calls == {"user": 1, "transient": 3}
    assert time.monotonic() - started < 30
