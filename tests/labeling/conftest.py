"""Store fixtures: every store test runs on SQLite, and on PostgreSQL when JURYFLOW_TEST_PG_URL is set.

Start a throwaway server with ``export JURYFLOW_TEST_PG_URL=$(scripts/start_test_postgres.sh)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks._procs import pg_schemas
from labeling.schemas import ChatMessage, Sample
from labeling.store import Store

DATA = Path(__file__).resolve().parents[1] / "data"
PG_URL = os.environ.get("JURYFLOW_TEST_PG_URL")
PG_SKIP = "PostgreSQL variant: set JURYFLOW_TEST_PG_URL (e.g. $(scripts/start_test_postgres.sh)) to run it"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[pytest.mark.requires_postgres, pytest.mark.skipif(not PG_URL, reason=PG_SKIP)],
    ),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'juryflow.db'}"
        return
    assert PG_URL is not None
    with pg_schemas(PG_URL, "test") as fresh_schema:
        yield fresh_schema()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = Store(store_url)
    yield st
    st.close()


def make_samples(n: int, prefix: str = "s", chat_every: int = 0) -> list[Sample]:
    """n distinct samples; every ``chat_every``-th has a chat prompt."""
    out = []
    for i in range(n):
        prompt: str | list[ChatMessage] = f"prompt {i}"
        if chat_every and i % chat_every == 0:
            prompt = [ChatMessage(role="system", content="Be kind."), ChatMessage(role="user", content=f"question {i}")]
        out.append(
            Sample(
                sample_id=f"{prefix}{i:05d}",
                prompt=prompt,
                response_a=f"answer A {i}",
                response_b=f"answer B {i}",
                metadata={"i": i},
                reference_label="A" if i % 2 else None,
            )
        )
    return out


def results_of_processes(target, store_url: str, n: int, timeout_s: float = 120) -> list:
    """Run ``target(store_url, barrier, out)`` in n forked processes released together by the barrier;
    return what each put on ``out`` (in arrival order), after checking that every one exited 0."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=target, args=(store_url, barrier, out)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=timeout_s) for _ in procs]
    for p in procs:
        p.join(timeout=timeout_s)
        assert p.exitcode == 0
    return results
