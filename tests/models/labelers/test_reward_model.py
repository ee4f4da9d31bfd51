from __future__ import annotations

import math
from pathlib import Path

import pytest

from labeling.schemas import ChatMessage, Sample
from models.labelers.reward_model import RewardModelLabeler, format_pair_text


def _samples(n: int) -> list[Sample]:
    return [
        Sample(
            sample_id=f"r{i}",
            prompt="Human: how do I fix a flat tyre?" * (1 + i % 2),
            response_a="Remove the wheel, find the puncture and patch it." * (1 + i % 3),
            response_b="Buy a new bike.",
        )
        for i in range(n)
    ]


def _swap(s: Sample) -> Sample:
    return s.model_copy(update={"response_a": s.response_b, "response_b": s.response_a})


@pytest.fixture(scope="module")
def labeler(tiny_reward_model_dir: Path):
    with RewardModelLabeler(tiny_reward_model_dir, batch_size=2) as rm:
        yield rm


def test_labels_are_antisymmetric_and_match_rewards(labeler: RewardModelLabeler) -> None:
    samples = _samples(5)
    labels = labeler.label(samples)
    swapped = labeler.label([_swap(s) for s in samples])
    assert [x.sample_id for x in labels] == [s.sample_id for s in samples]
    for x, y in zip(labels, swapped):
        assert 0.0 < x.p_a < 1.0
        assert y.p_a == pytest.approx(1.0 - x.p_a, abs=1e-5)
        assert x.labeler_version == labeler.version and x.labeler_name == "reward_model"
    # p_a is the Bradley-Terry probability of the two scalar rewards.
    tok = labeler._tokenizer
    s = samples[2]
    r_a, r_b = labeler.rewards([format_pair_text(tok, s.prompt, r) for r in (s.response_a, s.response_b)])

    assert labels[2].p_a == pytest.approx(1 / (1 + math.exp(r_b - r_a)), abs=1e-5)


def test_batch_size_invariance(tiny_reward_model_dir: Path, labeler: RewardModelLabeler) -> None:
    with RewardModelLabeler(tiny_reward_model_dir, batch_size=16) as big:
        for x, y in zip(labeler.label(_samples(5)), big.label(_samples(5))):
            assert x.p_a == pytest.approx(y.p_a, abs=1e-5)


def test_format_pair_text_uses_the_chat_template(labeler: RewardModelLabeler) -> None:
    text = format_pair_text(labeler._tokenizer, "hi there", "hello")
    assert text == "<|user|>\nhi there<|end|>\n<|assistant|>\nhello<|end|>\n"
    chat = [ChatMessage(role="system", content="be nice"), ChatMessage(role="user", content="hi")]
    assert format_pair_text(labeler._tokenizer, chat, "yo").startswith("<|system|>\nbe nice<|end|>\n<|user|>\nhi")


def test_format_pair_text_without_chat_template() -> None:
    class Plain:
        chat_template = None

    assert format_pair_text(Plain(), "prompt", "response") == "prompt\n\nresponse"


def test_version_changes_with_weights(tiny_reward_model_dir: Path, tmp_path: Path, labeler: RewardModelLabeler) -> None:
    from models.tiny import build_tiny_reward_model

    other = RewardModelLabeler(build_tiny_reward_model(tmp_path / "rm2", seed=1))
    assert other.version != labeler.version


def test_rejects_a_classifier_with_two_labels(tmp_path: Path, tiny_reward_model_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_reward_model_dir), num_labels=2, ignore_mismatched_sizes=True
    )
    model.save_pretrained(str(tmp_path / "two"))
    AutoTokenizer.from_pretrained(str(tiny_reward_model_dir)).save_pretrained(str(tmp_path / "two"))
    with pytest.raises(ValueError, match="num_labels=2"):
        RewardModelLabeler(tmp_path / "two").load()
