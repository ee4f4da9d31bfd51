"""Reserved ``juryflow-tiny/...`` ids: built offline, deterministically, cached, resolved like hub ids."""

from __future__ import annotations

import pytest

from models.labelers.reward_model import weights_fingerprint
from models.tiny import TINY_CHAT_POLICY, TINY_REWARD_MODEL, resolve_tiny_model
from models.training.loading import load_chat_tokenizer, resolve_base_model


def test_tiny_ids_build_once_deterministically_and_resolve(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("JURYFLOW_TINY_MODELS_DIR", str(tmp_path / "a"))
    policy = resolve_tiny_model(TINY_CHAT_POLICY)
    assert resolve_base_model(TINY_CHAT_POLICY) == str(policy)
    stamp = (policy / "config.json").stat().st_mtime_ns
    assert resolve_tiny_model(TINY_CHAT_POLICY) == policy and (policy / "config.json").stat().st_mtime_ns == stamp
    assert load_chat_tokenizer(TINY_CHAT_POLICY).chat_template  # a chat policy, usable by DPO/PPO/RLOO/GRPO
    assert [p.name for p in policy.parent.iterdir()] == [policy.name]  # no temporary build folder left behind

    monkeypatch.setenv("JURYFLOW_TINY_MODELS_DIR", str(tmp_path / "b"))
    assert weights_fingerprint(resolve_tiny_model(TINY_CHAT_POLICY)) == weights_fingerprint(policy)
    from transformers import AutoConfig

    reward_config = AutoConfig.from_pretrained(str(resolve_tiny_model(TINY_REWARD_MODEL)))
    assert reward_config.num_labels == 1 and reward_config.architectures == ["LlamaForSequenceClassification"]


def test_other_names_pass_through_and_unknown_tiny_ids_are_refused() -> None:
    assert resolve_tiny_model("Qwen/Qwen2.5-0.5B-Instruct") is None
    with pytest.raises(ValueError, match="juryflow-tiny/chat-policy"):
        resolve_tiny_model("juryflow-tiny/chat-polcy")
