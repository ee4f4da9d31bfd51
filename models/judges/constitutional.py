"""The constitutional recipe: templates, principle sampling, both A/B orders, critique mode, version.

``ConstitutionalJudge`` is the one recipe; it runs on any ``JudgeEngine`` (transformers, in-process
vLLM, an OpenAI-compatible server), which only scores and generates. Every backend thus builds the
same prompts, reads the same verdicts and reports the same ``version`` for the same model,
template, options and constitution. ``with_recipe`` gives another recipe (e.g. critique mode) on
the SAME engine, so one loaded model serves both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from labeling.constitution import Constitution, Principle, load_constitution
from labeling.schemas import JudgeVerdict, Sample
from models.base import Judge
from models.judges.engine import JudgeEngine, SlotScore
from models.judges.prompting import (
    VerdictParseError,
    build_judge_prompts,
    critique_max_tokens,
    critique_scoring_prompt,
    load_template,
    p_a_from_orders,
    parse_critique,
)

log = logging.getLogger(__name__)


def shipped_constitution() -> Constitution:
    from labeling.settings import DEFAULT_CONSTITUTION

    return load_constitution(DEFAULT_CONSTITUTION)


def judge_version(
    model: str,
    template_digest: str,
    critique: bool,
    principle_sample_k: int | None,
    constitution: Constitution | None = None,
) -> str:
    """``<model name>-<hash>`` over the model config (when local), template digest, judge options and
    the constitution's identity (name, version, digest of its principles; None: the shipped one).

    One model + template + constitution gives one version on every backend, so re-judging with
    another backend upserts rather than duplicates, and an edited constitution gives a new version.
    """
    constitution = constitution if constitution is not None else shipped_constitution()
    config_file = Path(model) / "config.json"
    config = config_file.read_text(encoding="utf-8") if config_file.is_file() else model
    blob = "\n".join([config, template_digest, str(critique), str(principle_sample_k), constitution.identity])
    return f"{Path(model).name}-{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:10]}"


class ConstitutionalJudge(Judge):
    """Judge samples against a constitution in both A/B orders, on an engine that scores and generates.

    ``constitution`` is the one ``version`` describes (None: the shipped one); ``judge()`` may be
    given another, and its verdicts then carry that constitution's version.
    """

    def __init__(
        self,
        engine: JudgeEngine,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
        constitution: Constitution | None = None,
    ) -> None:
        if principle_sample_k is not None and principle_sample_k < 1:
            raise ValueError(f"principle_sample_k={principle_sample_k}: must be >= 1 or None (all principles)")
        self.engine = engine
        self.name = engine.name
        self.critique = critique
        self.principle_sample_k = principle_sample_k
        self.template_path = template_path
        self.template = load_template(template_path, critique=critique)
        self.constitution = constitution if constitution is not None else shipped_constitution()

    @classmethod
    def on(
        cls,
        engine: JudgeEngine,
        template_path: str | Path | None = None,
        critique: bool = False,
        principle_sample_k: int | None = None,
        constitution: Constitution | None = None,
    ) -> ConstitutionalJudge:
        """This recipe on an engine that already exists (and may be loaded and shared)."""
        judge = cls.__new__(cls)
        ConstitutionalJudge.__init__(judge, engine, template_path, critique, principle_sample_k, constitution)
        return judge

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine!r}, critique={self.critique}, {self.constitution.identity})"

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    @property
    def version(self) -> str:
        return self.version_for(self.constitution)

    def version_for(self, constitution: Constitution) -> str:
        return judge_version(
            self.model_name, self.template.digest, self.critique, self.principle_sample_k, constitution
        )

    def with_recipe(
        self, critique: bool, template_path: str | Path | None = None, principle_sample_k: int | None = None
    ) -> ConstitutionalJudge:
        """Another recipe on the SAME engine (no second model load); ``template_path=None`` picks the
        shipped template for ``critique``. Unloading either judge unloads the engine for both."""
        return type(self).on(self.engine, template_path, critique, principle_sample_k, self.constitution)

    def load(self) -> None:
        self.engine.load()

    def unload(self) -> None:
        self.engine.unload()

    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        return self.engine.slot_a_probabilities(prompts)

    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        return self.engine.generate(prompts, max_tokens)

    def judge(self, samples: Sequence[Sample], constitution: Constitution | None = None) -> list[JudgeVerdict]:
        constitution = constitution if constitution is not None else self.constitution
        self.load()
        principles = [constitution.sample_principles(s.sample_id, self.principle_sample_k) for s in samples]
        pairs = [build_judge_prompts(s, p, self.template, critique=self.critique) for s, p in zip(samples, principles)]
        flat = [text for pair in pairs for text in pair]  # original, swapped, original, swapped, ...
        critiques: list[str | None] = [None] * len(samples)
        errors: list[str | None] = [None] * len(samples)
        if self.critique:
            flat, critiques, errors = self._critique_then_score(flat, principles)
        todo = [j for j, text in enumerate(flat) if text]
        scores: list[SlotScore] = [VerdictParseError("not scored")] * len(flat)
        for j, score in zip(todo, self.slot_a_probabilities([flat[j] for j in todo])):
            scores[j] = score
        version = self.version_for(constitution)  # reads the model config: once per batch, not per sample
        return [
            self._verdict(s, p, scores[2 * i], scores[2 * i + 1], critiques[i], errors[i], version)
            for i, (s, p) in enumerate(zip(samples, principles))
        ]

    def _critique_then_score(
        self, flat: list[str], principles: list[list[Principle]]
    ) -> tuple[list[str], list[str | None], list[str | None]]:
        """Generate both critiques per sample, parse them, and build the verdict-scoring prompts."""
        budgets = [critique_max_tokens(len(p)) for p in principles for _ in (0, 1)]
        generated = self.generate(flat, budgets)
        scoring: list[str] = []
        critiques: list[str | None] = []
        errors: list[str | None] = []
        for i, p in enumerate(principles):
            ids = [x.id for x in p]
            texts = generated[2 * i : 2 * i + 2]
            failed = next(
                (f"{order} order: {t}" for order, t in zip(("original", "swapped"), texts)
                 if isinstance(t, VerdictParseError)),
                None,
            )  # no text at all, e.g. the prompt was too long  # fmt: skip
            try:
                if failed is not None:
                    raise VerdictParseError(failed)
                crits = [parse_critique(text, ids) for text in texts]  # type: ignore[arg-type]
            except VerdictParseError as exc:
                critiques.append(None if failed else f"original order:\n{texts[0]}\n\nswapped order:\n{texts[1]}")
                errors.append(f"critique: {exc}")
                scoring.extend(["", ""])
                continue
            scoring.extend(critique_scoring_prompt(flat[2 * i + k], crits[k]) for k in (0, 1))
            critiques.append(f"original order:\n{crits[0].as_text()}\n\nswapped order:\n{crits[1].as_text()}")
            errors.append(None)
        return scoring, critiques, errors

    def _verdict(
        self,
        sample: Sample,
        principles: list[Principle],
        original: SlotScore,
        swapped: SlotScore,
        critique: str | None,
        error: str | None,
        version: str,
    ) -> JudgeVerdict:
        common = {
            "sample_id": sample.sample_id,
            "principles": [p.id for p in principles],
            "model": self.model_name,
            "version": version,
            "critique": critique,
        }
        for order, result in (("original", original), ("swapped", swapped)):
            if error is None and isinstance(result, VerdictParseError):
                error = f"{order} order: {result}"
        if error is not None:
            log.warning("judge could not read a verdict for sample %r: %s", sample.sample_id, error)
            return JudgeVerdict(**common, parse_error=error)
        p_orig, p_swap = p_a_from_orders(original, swapped)  # type: ignore[arg-type]
        return JudgeVerdict(**common, p_a_original=p_orig, p_a_swapped=p_swap)
