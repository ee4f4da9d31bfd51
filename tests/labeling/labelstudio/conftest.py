"""Label Studio fixtures: the admin client, annotators, per-test projects, and the migrated template.

The session server itself (`ls_server`) lives in tests/conftest.py, so tests outside this package
(the chaos test) share it instead of starting their own.

Migrating a fresh Label Studio database takes ~1 min, so it is done once and cached (keyed by the
Label Studio version) in $JURYFLOW_LS_TEMPLATE_DIR or /tmp; each session copies it (start ~6 s).
The server venv is labeling.labelstudio.server.default_venv(); it is installed if missing.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from labeling.labelstudio.client import LabelStudioClient, choice_result, reason_result
from labeling.labelstudio.server import LABEL_STUDIO_VERSION, LabelStudioServer
from labeling.schemas import AILabel, JudgeVerdict, Route, RouteReason, Sample
from tasks import resources
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]


def build_template(venv: Path) -> Path:
    """A data dir whose Label Studio database is already migrated (built once per machine)."""
    base = Path(os.environ.get("JURYFLOW_LS_TEMPLATE_DIR", "/tmp"))
    template = base / f"juryflow-ls-template-{LABEL_STUDIO_VERSION}"
    if (template / "labelstudio" / "data" / "label_studio.sqlite3").is_file():
        return template
    building = base / f"{template.name}.build-{uuid.uuid4().hex[:8]}"
    server = LabelStudioServer(building, port=free_port(), venv=venv)
    # Migrations take ~1 min on an idle machine, several on a busy 2-core one.
    server.start(timeout_s=900)
    server.stop()
    for leftover in ("server.log", "server.json"):
        (building / "labelstudio" / leftover).unlink(missing_ok=True)
    try:
        building.rename(template)  # atomic: a concurrent builder loses the race harmlessly
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return template


@pytest.fixture(scope="session")
def ls_admin(ls_server: LabelStudioServer) -> LabelStudioClient:
    return LabelStudioClient(ls_server.url, ls_server.token)


@pytest.fixture(scope="session")
def annotators(ls_admin: LabelStudioClient) -> list[int]:
    """Three annotator accounts (user ids); annotations are submitted on their behalf via `completed_by`."""
    ids = []
    for i in range(1, 4):
        user = ls_admin.sdk.users.create(username=f"annotator{i}", email=f"annotator{i}@juryflow.local",
                                         password=f"annotator{i}-pass-{uuid.uuid4().hex[:6]}")
        ids.append(int(user.id))
    return ids


@pytest.fixture
def ls_env(juryflow_env, monkeypatch, ls_server):
    """Settings pointing at the session server, with a project (campaign) of this test's own."""
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__URL", ls_server.url)
    monkeypatch.setenv("JURYFLOW__LABELSTUDIO__API_KEY", ls_server.token)
    monkeypatch.setenv("JURYFLOW__CAMPAIGN", f"t{uuid.uuid4().hex[:10]}")
    return juryflow_env


def make_samples(n: int, prefix: str = "s") -> list[Sample]:
    return [Sample(sample_id=f"{prefix}{i:04d}", prompt=f"Question {i}?", response_a=f"answer A{i}",
                   response_b=f"answer B{i}") for i in range(n)]


def seed_human_pending(samples: list[Sample], judge_prefers: str | None = None, audit: bool = False) -> None:
    """Put samples into human_pending the way the pipeline does: cold start, or labeler -> judge -> human."""
    st = resources.store()
    st.add_samples(samples, source="test")
    ids = [s.sample_id for s in samples]
    if judge_prefers is None:
        st.record_routes([Route(sample_id=i, to_judge=False, to_human=True, reasons=[RouteReason.cold_start])
                          for i in ids], stage="labeler")
        return
    st.record_ai_labels([AILabel(sample_id=i, p_a=0.9, labeler_name="emb", labeler_version="v1") for i in ids])
    st.record_routes([Route(sample_id=i, to_judge=True, to_human=False, reasons=[RouteReason.high_confidence])
                      for i in ids], stage="labeler")
    p = 0.9 if judge_prefers == "A" else 0.1
    st.record_verdicts([JudgeVerdict(sample_id=i, p_a_original=p, p_a_swapped=p, model="tiny", version="j1",
                                     critique="Principle 1: <b>harmless</b>") for i in ids])
    reason = RouteReason.audit if audit else RouteReason.judge_disagrees
    st.record_routes([Route(sample_id=i, to_judge=False, to_human=True, reasons=[reason]) for i in ids], stage="judge")


def annotate(client: LabelStudioClient, task_id: int, user_id: int, choice: str, reason: str | None = None) -> int:
    result = [choice_result(choice)] + ([reason_result(reason)] if reason else [])
    return int(client.sdk.annotations.create(task_id, result=result, completed_by=user_id).id)
