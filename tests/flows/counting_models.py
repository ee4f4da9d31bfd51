"""A zero-cost, deterministic AI labeler and judge that record, per process, each model load and chunk.

Task-runner workers are other processes, where a test's monkeypatch does not reach: the cluster
runs ``install`` in each worker as it starts (Dask: ``cluster_options.preload`` of this module,
which calls ``dask_setup``; Ray: ``runtime_env.worker_process_setup_hook``), putting these in place
of models.factory's builders. tasks/resources.py still does the caching, so the log shows how often
each worker really loaded each model. Each event is one line ``<pid> <event> <n>`` appended to
<data_dir>/model-events.log, where data_dir is read from the worker's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from labeling.constitution import Constitution
from labeling.schemas import AILabel, JudgeVerdict, Sample, unit_hash
from labeling.settings import load_settings
from models.base import AILabeler, Judge

EVENTS = "model-events.log"
REPO = Path(__file__).resolve().parents[2]


def dask_cluster_options() -> dict:
    """task_runner.cluster_options that make each Dask worker install these models as it starts."""
    return {"preload": [__name__]}


def ray_cluster_options() -> dict:
    """The same for Ray. Ray runs the setup hook before it hands a worker the driver's sys.path, so
    this module must be importable from PYTHONPATH. A small object store: chunk results are a few counts."""
    return {"runtime_env": {"worker_process_setup_hook": f"{__name__}.install", "env_vars": {"PYTHONPATH": str(REPO)}},
            "object_store_memory": 100 * 2**20}  # fmt: skip


def record(event: str, n: int = 0) -> None:
    # One short write per line in append mode: lines from several processes do not interleave.
    with (load_settings().data_dir / EVENTS).open("a") as log:
        log.write(f"{os.getpid()} {event} {n}\n")


def read_events(data_dir: Path) -> list[tuple[int, str, int]]:
    lines = (data_dir / EVENTS).read_text().split()
    return [(int(pid), event, int(n)) for pid, event, n in zip(lines[::3], lines[1::3], lines[2::3])]


class CountingLabeler(AILabeler):
    """P(A) is a hash of the sample id: spread over the confidence range, identical in every process."""

    name = "counting"
    version = "counting-v1"

    def load(self) -> None:
        record("load-labeler")

    def label(self, samples: Sequence[Sample]) -> list[AILabel]:
        record("label", len(samples))
        return [AILabel(sample_id=s.sample_id, p_a=unit_hash("p", s.sample_id), labeler_name=self.name,
                        labeler_version=self.version) for s in samples]  # fmt: skip


class CountingEngine:
    """What tasks/resources.py caches a judge's engine by: an identity, load and unload."""

    identity = ("counting",)

    def load(self) -> None:
        record("load-judge")

    def unload(self) -> None:
        pass


class CountingJudge(Judge):
    """Agrees or disagrees with the labeler by sample id, and flips under the A/B swap for about 1 in 5."""

    name = "counting"
    version = "counting-judge-v1"

    def judge(self, samples: Sequence[Sample], constitution: Constitution) -> list[JudgeVerdict]:
        record("judge", len(samples))
        out = []
        for s in samples:
            p = unit_hash("judge", s.sample_id)
            swapped = 1.0 - p if unit_hash("swap", s.sample_id) < 0.2 else p
            out.append(JudgeVerdict(sample_id=s.sample_id, p_a_original=p, p_a_swapped=swapped, model="counting",
                                    version=self.version))  # fmt: skip
        return out


def install(setattr=setattr) -> None:
    """Put the counting models in place of models.factory's builders (pass monkeypatch.setattr in-process)."""
    import models.factory as factory

    setattr(factory, "build_labeler", lambda settings, active=None: CountingLabeler())
    setattr(factory, "build_judge_engine", lambda settings: CountingEngine())
    setattr(factory, "build_judge", lambda settings, engine=None, critique=None: CountingJudge())


def dask_setup(worker) -> None:  # distributed calls this in each worker that preloads this module
    install()
