from __future__ import annotations

import json
from pathlib import Path

import pytest

from labeling.constitution import load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION
from models.judges.prompting import VerdictParseError, build_judge_prompts
from models.judges.transformers_judge import TransformersJudge, verdict_token_ids

CONSTITUTION = load_constitution(DEFAULT_CONSTITUTION)


def _samples(n: int) -> list[Sample]:
    return [
        Sample(
            sample_id=f"s{i}",
            prompt="How do I bake bread? " * (1 + i % 3),  # different lengths: exercises left padding
            response_a="Mix flour, water, salt and yeast, then bake." * (1 + i % 2),
            response_b="No." if i % 2 else "Answer A.",
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def judge(tiny_causal_lm_dir: Path):
    with TransformersJudge(tiny_causal_lm_dir, batch_size=4) as j:
        yield j


def _manual_slot_a(model_dir: Path, text: str) -> float:
    """P(slot A) from one unpadded forward pass, written out independently of the judge."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    ids = tok(text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        probs = torch.softmax(model(ids).logits[0, -1].float(), dim=-1)
    a = sum(probs[i].item() for t, i in verdict_token_ids(tok).items() if t.strip() == "A")
    b = sum(probs[i].item() for t, i in verdict_token_ids(tok).items() if t.strip() == "B")
    return a / (a + b)


def test_one_verdict_per_sample_with_probabilities(judge: TransformersJudge) -> None:
    samples = _samples(5)
    verdicts = judge.judge(samples, CONSTITUTION)
    assert [v.sample_id for v in verdicts] == [s.sample_id for s in samples]
    for v in verdicts:
        assert v.parse_error is None
        assert 0.0 <= v.p_a_original <= 1.0 and 0.0 <= v.p_a_swapped <= 1.0
        assert v.principles == [p.id for p in CONSTITUTION.principles]
        assert v.version == judge.version


def test_swapped_order_matches_manual_forward_pass(judge: TransformersJudge, tiny_causal_lm_dir: Path) -> None:
    sample = _samples(2)[1]
    verdict = judge.judge([sample, _samples(1)[0]], CONSTITUTION)[0]  # batched beside a shorter sample
    original, swapped = build_judge_prompts(sample, CONSTITUTION.principles, judge.template)
    assert verdict.p_a_original == pytest.approx(_manual_slot_a(tiny_causal_lm_dir, original), abs=1e-4)
    assert verdict.p_a_swapped == pytest.approx(1.0 - _manual_slot_a(tiny_causal_lm_dir, swapped), abs=1e-4)


def test_batch_size_invariance(tiny_causal_lm_dir: Path, judge: TransformersJudge) -> None:
    samples = _samples(5)
    batched = judge.judge(samples, CONSTITUTION)
    with TransformersJudge(tiny_causal_lm_dir, batch_size=1) as one_by_one:
        single = one_by_one.judge(samples, CONSTITUTION)
    for x, y in zip(batched, single):
        assert x.p_a_original == pytest.approx(y.p_a_original, abs=1e-4)
        assert x.p_a_swapped == pytest.approx(y.p_a_swapped, abs=1e-4)


def test_principle_subset_and_version(tiny_causal_lm_dir: Path, judge: TransformersJudge) -> None:
    k2 = TransformersJudge(tiny_causal_lm_dir, principle_sample_k=2)
    assert k2.version != judge.version and k2.version.startswith(tiny_causal_lm_dir.name)
    verdict = k2.judge(_samples(1), CONSTITUTION)[0]
    assert len(verdict.principles) == 2
    assert verdict.principles == [p.id for p in CONSTITUTION.sample_principles("s0", 2)]
    k2.unload()


def _too_long(model_dir: Path) -> Sample:
    """A sample longer than the model's whole context window."""
    context = json.loads((Path(model_dir) / "config.json").read_text())["max_position_embeddings"]
    return Sample(sample_id="long", prompt="word " * (context + 100), response_a="a", response_b="b")


def test_overlong_prompt_is_recorded_not_labeled(judge: TransformersJudge, tiny_causal_lm_dir: Path) -> None:
    long = _too_long(tiny_causal_lm_dir)
    short = _samples(1)[0]
    verdicts = judge.judge([long, short], CONSTITUTION)
    assert verdicts[0].parse_error and "tokens" in verdicts[0].parse_error and verdicts[0].p_a is None
    assert verdicts[1].parse_error is None  # the rest of the batch carries on


def test_critique_mode_records_parse_errors(tiny_causal_lm_dir: Path) -> None:
    # A random tiny model writes no valid critique: that must be recorded, never become a label.
    with TransformersJudge(tiny_causal_lm_dir, critique=True, principle_sample_k=1, batch_size=2) as j:
        verdicts = j.judge(_samples(2), CONSTITUTION)
    for v in verdicts:
        assert v.parse_error is not None and v.parse_error.startswith("critique:")
        assert v.p_a is None and v.preferred is None
        assert v.critique  # the raw generations are kept for review


def test_critique_mode_scores_verdict_after_a_valid_critique(tiny_causal_lm_dir: Path, monkeypatch) -> None:
    # Replace only the generation step (a random model cannot write a valid critique); scoring is real.
    with TransformersJudge(tiny_causal_lm_dir, critique=True, principle_sample_k=1) as j:
        pid = CONSTITUTION.sample_principles("s0", 1)[0].id
        written = f"\n{pid}: A is better.\nVerdict: A"
        monkeypatch.setattr(j, "generate", lambda texts, max_tokens: [written] * len(texts))
        verdict = j.judge(_samples(1), CONSTITUTION)[0]
        principles = CONSTITUTION.sample_principles("s0", 1)
        original, _ = build_judge_prompts(_samples(1)[0], principles, j.template, critique=True)
        expected = _manual_slot_a(tiny_causal_lm_dir, f"{original}\n{pid}: A is better.\nVerdict:")
    assert verdict.parse_error is None
    assert verdict.p_a_original == pytest.approx(expected, abs=1e-4)
    assert pid in verdict.critique


def test_version_formula_is_shared_with_the_other_backends(judge: TransformersJudge, tiny_causal_lm_dir: Path) -> None:
    from models.judges.constitutional import judge_version

    assert judge.version == judge_version(str(tiny_causal_lm_dir), judge.template.digest, False, None)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.requires_gpu
@pytest.mark.skipif(not _cuda(), reason="no CUDA GPU: the bf16-on-cuda path of TransformersJudge needs one")
def test_auto_device_uses_cuda_bf16_and_agrees_with_cpu(judge: TransformersJudge, tiny_causal_lm_dir: Path) -> None:
    import torch

    samples = _samples(4)
    with TransformersJudge(tiny_causal_lm_dir, device="auto") as gpu:
        assert gpu.device == "cuda"
        assert next(gpu.engine._model.parameters()).dtype == torch.bfloat16
        on_gpu = gpu.judge(samples, CONSTITUTION)
    for x, y in zip(judge.judge(samples, CONSTITUTION), on_gpu):
        assert y.parse_error is None
        assert y.p_a_original == pytest.approx(x.p_a_original, abs=0.02)  # bf16 rounding only


def test_critique_mode_overlong_prompt_is_an_error_not_a_truncation(tiny_causal_lm_dir: Path) -> None:
    long = _too_long(tiny_causal_lm_dir)
    with TransformersJudge(tiny_causal_lm_dir, critique=True, principle_sample_k=1) as j:
        verdict = j.judge([long], CONSTITUTION)[0]
    assert verdict.p_a is None and "critique prompt is" in verdict.parse_error


def test_generate_gives_each_prompt_its_own_budget(judge: TransformersJudge) -> None:
    text = "word " * 10
    n = len(judge.engine._tokenizer(text)["input_ids"])
    one, four, too_long = judge.generate([text, text, text], [1, 4, judge.engine._max_length - n + 1])
    assert one and four.startswith(one)  # greedy: the longer budget continues the same first token
    assert isinstance(too_long, VerdictParseError) and "critique prompt is" in str(too_long)
