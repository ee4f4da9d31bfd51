"""The constitutional recipe apart from its engine: provenance (the constitution is in the judge
version) and one loaded engine serving the verdict and critique recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

from labeling.constitution import Constitution, load_constitution
from labeling.schemas import Sample
from labeling.settings import DEFAULT_CONSTITUTION
from models.judges.constitutional import ConstitutionalJudge, judge_version
from models.judges.transformers_judge import TransformersEngine, TransformersJudge

YAML = """\
name: tiny-test
version: "1"
principles:
  - id: helpful
    text: Prefer the response that answers the {word}.
  - id: harmless
    text: Prefer the response that avoids harm.
"""
SAMPLE = Sample(sample_id="s0", prompt="How do I bake bread?", response_a="Bake it.", response_b="No.")


def _constitution(tmp_path: Path, word: str, name: str = "c.yaml") -> Constitution:
    path = tmp_path / name
    path.write_text(YAML.format(word=word), encoding="utf-8")
    return load_constitution(path)


def test_one_word_gives_another_version_and_the_same_text_the_same(tmp_path: Path) -> None:
    question, query = _constitution(tmp_path, "question"), _constitution(tmp_path, "query", "other.yaml")
    again = _constitution(tmp_path, "question", "copy.yaml")  # same text, another file
    assert question.name == query.name and question.version == query.version  # only the text differs
    assert question.digest != query.digest and question.digest == again.digest
    versions = {c.digest: judge_version("tiny-judge", "t1", False, None, c) for c in (question, query, again)}
    assert len(versions) == 2
    assert judge_version("tiny-judge", "t1", False, None, question) == judge_version(
        "tiny-judge", "t1", False, None, again
    )
    assert judge_version("tiny-judge", "t1", False, None, question) != judge_version(
        "tiny-judge", "t1", False, None, query
    )
    # Renaming or re-versioning the constitution is a new identity too.
    renamed = question.model_copy(update={"version": "2"})
    assert renamed.identity != question.identity
    assert judge_version("tiny-judge", "t1", False, None, renamed) != versions[question.digest]


def test_none_means_the_shipped_constitution() -> None:
    shipped = load_constitution(DEFAULT_CONSTITUTION)
    assert judge_version("m", "t", False, None) == judge_version("m", "t", False, None, shipped)


def test_verdicts_carry_the_version_of_the_constitution_that_judged_them(
    tiny_causal_lm_dir: Path, tmp_path: Path
) -> None:
    question, query = _constitution(tmp_path, "question"), _constitution(tmp_path, "query", "other.yaml")
    with TransformersJudge(tiny_causal_lm_dir, device="cpu", constitution=question) as judge:
        (v_question,) = judge.judge([SAMPLE], question)
        (v_query,) = judge.judge([SAMPLE], query)
        (v_default,) = judge.judge([SAMPLE])  # the judge's own constitution
    assert v_question.version == judge.version == v_default.version
    assert v_query.version == judge.version_for(query) != judge.version
    assert v_question.parse_error is None and v_query.parse_error is None


def test_critique_recipe_runs_on_the_same_engine(tiny_causal_lm_dir: Path) -> None:
    with TransformersJudge(tiny_causal_lm_dir, device="cpu", principle_sample_k=1) as judge:
        critic = judge.with_recipe(critique=True, principle_sample_k=1)
        assert critic.engine is judge.engine and critic.critique and not judge.critique
        assert critic.version != judge.version and critic.template.critique
        loaded = judge.engine._model
        (verdict,) = critic.judge([SAMPLE])  # a random tiny model: a recorded critique parse error
        assert judge.engine._model is loaded  # no second load
    assert verdict.parse_error is not None and verdict.parse_error.startswith("critique:")


def test_backend_judges_are_the_recipe_on_their_engine(tiny_causal_lm_dir: Path) -> None:
    engine = TransformersEngine(tiny_causal_lm_dir, device="cpu")
    plain = ConstitutionalJudge(engine)
    assert plain.version == TransformersJudge(tiny_causal_lm_dir, device="cpu").version
    assert plain.name == "transformers" and "juryflow-hhh@1#" in repr(plain)
    with pytest.raises(ValueError, match="principle_sample_k=0"):
        ConstitutionalJudge(engine, principle_sample_k=0)


def test_task_cache_shares_one_engine_between_verdict_and_critique_judges(
    juryflow_env: Path, tiny_causal_lm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasks import resources

    loads: list[TransformersEngine] = []
    real_load = TransformersEngine.load

    def counting_load(self: TransformersEngine) -> None:
        if self._model is None:
            loads.append(self)
        real_load(self)

    monkeypatch.setattr(TransformersEngine, "load", counting_load)
    monkeypatch.setenv("JURYFLOW__JUDGE__MODEL_PATH", str(tiny_causal_lm_dir))
    monkeypatch.setenv("JURYFLOW__JUDGE__DEVICE", "cpu")
    monkeypatch.setenv("JURYFLOW__JUDGE__CRITIQUE_ESCALATED", "true")
    cfg = resources.settings()
    verdicts = resources.judge(cfg)
    critic = resources.judge(cfg, critique=True)
    assert critic is not verdicts and critic.critique and not verdicts.critique
    assert critic.engine is verdicts.engine  # one model in memory (on vLLM: one engine on the GPU)
    assert resources.judge(cfg) is verdicts and resources.judge(cfg, critique=True) is critic
    critic.judge([SAMPLE], resources.constitution(cfg))
    assert loads == [verdicts.engine]
    resources.release_models()
    assert verdicts.engine._model is None
