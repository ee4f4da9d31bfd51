from __future__ import annotations

import logging
from pathlib import Path

import pytest

from labeling.settings import load_settings
from models.factory import PLACEHOLDER_JUDGE_DIR, build_judge, build_labeler


def test_cold_start_has_no_labeler(juryflow_env: Path) -> None:
    assert build_labeler(load_settings()) is None
    assert build_labeler(load_settings(labeler={"backend": "reward_model"})) is None


def test_embedding_labeler_from_a_head(juryflow_env: Path) -> None:
    from models.labelers.embedding import EmbeddingLabeler

    with pytest.raises(ValueError, match="juryflow labeler fit"):
        build_labeler(load_settings(labeler={"model_path": str(juryflow_env / "missing.json")}))
    # A head file written by hand in the current format (weights only matter for labeling).
    from models.labelers.embedding import FEATURES, HEAD_FORMAT, N_FEATURES

    head = juryflow_env / "head.json"
    head.write_text(
        '{"format": "%s", "features": %s, "weights": %s}'
        % (HEAD_FORMAT, str(list(FEATURES)).replace("'", '"'), [0.0] * N_FEATURES)
    )
    labeler = build_labeler(load_settings(labeler={"model_path": str(head), "batch_size": 8}))
    assert isinstance(labeler, EmbeddingLabeler) and labeler.batch_size == 8


def test_reward_model_labeler(juryflow_env: Path, tiny_reward_model_dir: Path) -> None:
    from models.labelers.reward_model import RewardModelLabeler

    settings = load_settings(labeler={"backend": "reward_model", "model_path": str(tiny_reward_model_dir)})
    assert isinstance(build_labeler(settings), RewardModelLabeler)
    with pytest.raises(ValueError, match="no config.json"):
        build_labeler(load_settings(labeler={"backend": "reward_model", "model_path": str(juryflow_env)}))


def test_placeholder_judge_is_built_once_with_a_loud_warning(juryflow_env: Path, caplog) -> None:
    from models.judges.transformers_judge import TransformersJudge

    settings = load_settings()
    with caplog.at_level(logging.WARNING, logger="models.factory"):
        judge = build_judge(settings)
    assert isinstance(judge, TransformersJudge)
    placeholder = Path(settings.data_dir) / PLACEHOLDER_JUDGE_DIR
    assert judge.model_path == str(placeholder)
    assert "MEANINGLESS" in caplog.text
    stamp = (placeholder / "config.json").stat().st_mtime_ns
    build_judge(settings)
    assert (placeholder / "config.json").stat().st_mtime_ns == stamp  # not rebuilt


def test_transformers_judge_from_settings(juryflow_env: Path, tiny_causal_lm_dir: Path) -> None:
    settings = load_settings(
        judge={"model_path": str(tiny_causal_lm_dir), "batch_size": 3, "critique": True, "principle_sample_k": 2}
    )
    judge = build_judge(settings)
    assert (judge.model_path, judge.batch_size, judge.critique, judge.principle_sample_k) == (
        str(tiny_causal_lm_dir), 3, True, 2
    )


def test_vllm_and_openai_backends_dispatch(juryflow_env: Path) -> None:
    # Constructing must not import vllm or contact a server (both happen in load()).
    from models.judges.openai_judge import OpenAICompatibleJudge
    from models.judges.vllm_judge import VLLMJudge

    vllm_settings = load_settings(judge={"backend": "vllm", "model_path": "/models/judge", "tensor_parallel_size": 2})
    vllm = build_judge(vllm_settings)
    assert isinstance(vllm, VLLMJudge)
    openai = build_judge(
        load_settings(judge={"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model_path": "judge"})
    )
    assert isinstance(openai, OpenAICompatibleJudge)
    with pytest.raises(ValueError, match="served-model-name"):
        build_judge(load_settings(judge={"backend": "openai", "base_url": "http://127.0.0.1:9/v1"}))
