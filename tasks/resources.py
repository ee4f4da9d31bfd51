"""Per-process handles on the store and models, shared by the tasks that run in a worker.

Tasks load settings themselves instead of taking them as parameters: Prefect records task
parameters in its database and cache keys, and the settings hold secrets (SecretStr).
Heavy objects (database engines, models) are cached per process, keyed by what identifies
them, so a worker -- thread, Dask or Ray process -- loads each model once, not per chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from functools import lru_cache, partial

from labeling.cascade import PolicyFor
from labeling.constitution import Constitution, load_constitution
from labeling.records import read_active_labeler, read_active_thresholds
from labeling.routing import policy_in_force
from labeling.settings import Settings, load_settings
from labeling.store import Store
from models.base import AILabeler, Judge
from models.judges.engine import JudgeEngine

_lock = threading.Lock()
_labelers: dict[tuple, AILabeler | None] = {}
_judges: dict[tuple, Judge] = {}
_judge_engines: dict[Hashable, JudgeEngine] = {}


def settings() -> Settings:
    return load_settings()


@lru_cache(maxsize=8)
def _store(url: str) -> Store:
    return Store(url)


def store(cfg: Settings | None = None) -> Store:
    cfg = cfg or settings()
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    return _store(cfg.resolved_store_url)


def constitution(cfg: Settings) -> Constitution:
    return load_constitution(cfg.judge.constitution_path)


def labeler(cfg: Settings) -> AILabeler | None:
    """The active AI labeler, or None on a cold start (nothing trained yet)."""
    from models.factory import build_labeler

    # Read the promotion record on every call, so a long-running worker picks up a newly
    # promoted reward model instead of keeping the one it loaded first.
    active = read_active_labeler(store(cfg))
    key = (cfg.labeler.backend, cfg.labeler.model_path, cfg.resolved_store_url, active.version if active else None)
    with _lock:
        if key not in _labelers:
            built = build_labeler(cfg, active)
            if built is not None:
                built.load()
            _labelers[key] = built
        return _labelers[key]


def judge(cfg: Settings, critique: bool | None = None) -> Judge:
    """The configured judge (``critique`` overrides judge.critique), loaded once per process.

    Judges are recipes over an engine, and engines are cached by their identity: the verdict and
    the critique-escalation judges share one loaded model (on vLLM, one engine per GPU, not two).
    """
    from models.factory import build_judge, build_judge_engine

    j = cfg.judge
    critique = j.critique if critique is None else critique
    key = (j.backend, j.model_path, j.base_url, j.device, critique, j.template_path, j.principle_sample_k,
           str(j.constitution_path))  # fmt: skip
    with _lock:
        if key not in _judges:
            engine = build_judge_engine(cfg)  # cheap: nothing is loaded until load()
            engine = _judge_engines.setdefault(engine.identity, engine)
            engine.load()
            _judges[key] = build_judge(cfg, engine, critique)
        return _judges[key]


def policy_for(cfg: Settings, st: Store) -> PolicyFor:
    """The routing policy in force per labeler version, from the active thresholds read now."""
    return partial(policy_in_force, cfg.routing, read_active_thresholds(st))


def release_models() -> None:
    """Free cached models (tests, and flows that want the memory back)."""
    with _lock:
        for model in [*_labelers.values(), *_judge_engines.values()]:
            if model is not None:
                model.unload()
        _labelers.clear()
        _judges.clear()
        _judge_engines.clear()
