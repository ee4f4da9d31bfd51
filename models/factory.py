"""Build the configured AI labeler and judge from settings (backends are imported lazily)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from labeling.records import ActiveLabeler, read_active_labeler
from labeling.settings import Settings
from models.base import AILabeler, Judge
from models.judges.engine import JudgeEngine

log = logging.getLogger(__name__)

PLACEHOLDER_JUDGE_DIR = "placeholder-judge"


def _read_promotion(settings: Settings) -> ActiveLabeler | None:
    """The reward model promoted by the training gate, if any (labeling.records.ActiveLabeler)."""
    from labeling.store import Store

    store = Store.from_settings(settings)
    try:
        return read_active_labeler(store)
    finally:
        store.close()


_UNREAD: Any = object()  # "the caller did not read the promotion record" (None = read: nothing promoted)


def build_labeler(settings: Settings, active: ActiveLabeler | None = _UNREAD) -> AILabeler | None:
    """The AI labeler: a promoted reward model if the gate promoted one, else the configured one,
    else None (cold start: humans label first, and their labels train the first labeler).

    ``active`` is the promotion record (or None) when the caller has already read it.
    """
    cfg = settings.labeler
    if active is _UNREAD:
        active = _read_promotion(settings)
    if active is not None:
        # The loop closes here: each promoted reward model labels the next batch.
        from models.labelers.reward_model import RewardModelLabeler

        log.info("AI labeler: promoted reward model %s (%s)", active.version, active.model_path)
        return RewardModelLabeler(Path(active.model_path), batch_size=cfg.batch_size)
    if cfg.model_path is None:
        log.info("no AI labeler configured (labeler.model_path unset): cold start, samples go to humans")
        return None
    path = Path(cfg.model_path)
    if cfg.backend == "embedding":
        from models.labelers.embedding import EmbeddingLabeler

        return EmbeddingLabeler(path, batch_size=cfg.batch_size)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"labeler.model_path {str(path)!r} is not a model directory (no config.json): point it at a reward "
            "model trained by `train_reward_model`, or unset it for a cold start"
        )
    from models.labelers.reward_model import RewardModelLabeler

    return RewardModelLabeler(path, batch_size=cfg.batch_size)


def placeholder_judge_dir(settings: Settings) -> Path:
    """A tiny random causal LM under data_dir, built once, so the offline demo runs end to end."""
    from models.tiny import build_tiny_causal_lm

    out = Path(settings.data_dir) / PLACEHOLDER_JUDGE_DIR
    if not (out / "config.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        build_tiny_causal_lm(out)
    return out


def build_judge_engine(settings: Settings) -> JudgeEngine:
    """The configured judge engine (not loaded yet): the model that scores and generates."""
    cfg = settings.judge
    if cfg.backend == "vllm":
        from models.judges.vllm_judge import VLLMEngine

        return VLLMEngine(
            model_path=cfg.model_path,  # settings validation guarantees it is set for vllm
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
        )
    if cfg.backend == "openai":
        from models.judges.openai_judge import OpenAIEngine

        if not cfg.model_path:
            raise ValueError(
                "judge.backend is 'openai' but judge.model_path is unset: set it to the model name the server "
                "serves (the `--served-model-name` or model path given to `vllm serve`)"
            )
        return OpenAIEngine(
            base_url=cfg.base_urls,  # one or several replicas; settings validation guarantees one for openai
            model=cfg.model_path,
            api_key=cfg.api_key,
            max_concurrency=cfg.max_concurrency,
            timeout_s=cfg.timeout_s,
        )
    from models.judges.transformers_judge import TransformersEngine

    model_path = cfg.model_path
    if model_path is None:
        model_path = str(placeholder_judge_dir(settings))
        log.warning(
            "\n" + "!" * 78 + "\n"
            "judge.model_path is unset: using a TINY RANDOM PLACEHOLDER judge at %s.\n"
            "Its verdicts are MEANINGLESS; they only exercise the wiring. Set judge.model_path\n"
            "(JURYFLOW__JUDGE__MODEL_PATH) to a real instruction-tuned model before trusting any label.\n"
            + "!" * 78,
            model_path,
        )
    return TransformersEngine(model_path, device=cfg.device, batch_size=cfg.batch_size)


def build_judge(settings: Settings, engine: JudgeEngine | None = None, critique: bool | None = None) -> Judge:
    """The configured constitutional judge on ``engine`` (default: a new, unloaded one).

    ``critique`` overrides ``judge.critique``: critique escalation passes the verdict judge's
    engine here, so both recipes run on one loaded model.
    """
    from labeling.constitution import load_constitution

    cfg = settings.judge
    if cfg.backend == "vllm":
        from models.judges.vllm_judge import VLLMJudge as judge_class
    elif cfg.backend == "openai":
        from models.judges.openai_judge import OpenAICompatibleJudge as judge_class
    else:
        from models.judges.transformers_judge import TransformersJudge as judge_class
    return judge_class.on(
        engine if engine is not None else build_judge_engine(settings),
        template_path=cfg.template_path,
        critique=cfg.critique if critique is None else critique,
        principle_sample_k=cfg.principle_sample_k,
        constitution=load_constitution(cfg.constitution_path),
    )
