"""The backend-independent judging recipe: both A/B orders per sample, critique mode, verdicts.

A backend (transformers, in-process vLLM, an OpenAI-compatible server) subclasses ``ScoredJudge``
and provides only ``slot_a_probabilities(prompts)`` and ``generate(prompts, max_tokens)``, plus
``load()``/``unload()``. Every backend thus builds the same prompts, reads the same verdicts and
reports the same ``version`` for the same model, template and options.
"""

from __future__ import annotations

import hashlib
import logging
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path

from labeling.constitution import Constitution, Principle
from labeling.schemas import JudgeVerdict, Sample
from models.base import Judge
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

# A per-prompt outcome: P(slot A), or the reason it could not be read.
SlotScore = float | VerdictParseError


def prompt_too_long(n_tokens: int, max_length: int, new_tokens: int, critique: bool) -> VerdictParseError | None:
    """The error for a prompt that leaves no room for its new tokens in the context; None if it fits.

    Every backend reports it per sample, so one over-long sample never fails its whole batch.
    """
    limit = max_length - new_tokens
    if n_tokens <= limit:
        return None
    if not critique:
        return VerdictParseError(f"judge prompt is {n_tokens} tokens; the model accepts at most {limit}")
    return VerdictParseError(
        f"critique prompt is {n_tokens} tokens; with {new_tokens} new tokens the model accepts at most {limit}"
    )


def judge_version(model: str, template_digest: str, critique: bool, principle_sample_k: int | None) -> str:
    """``<model name>-<hash>`` over the model config (when local), template digest and judge options.

    ``ScoredJudge.version`` for every backend, so one model + template gives one version on every
    backend and re-judging with another backend upserts rather than duplicates.
    """
    config_file = Path(model) / "config.json"
    config = config_file.read_text(encoding="utf-8") if config_file.is_file() else model
    blob = "\n".join([config, template_digest, str(critique), str(principle_sample_k)])
    return f"{Path(model).name}-{hashlib.sha256(blob.encode('utf-8')).hexdigest()[:10]}"


class ScoredJudge(Judge):
    """The judging recipe shared by the transformers, vLLM and OpenAI-compatible backends.

    A subclass provides ``slot_a_probabilities(prompts)`` and ``generate(prompts, max_tokens)``;
    this class builds both orders per sample, runs critique mode and assembles the verdicts.
    """

    model_name: str

    def __init__(self, template_path: str | Path | None, critique: bool, principle_sample_k: int | None) -> None:
        if principle_sample_k is not None and principle_sample_k < 1:
            raise ValueError(f"principle_sample_k={principle_sample_k}: must be >= 1 or None (all principles)")
        self.critique = critique
        self.principle_sample_k = principle_sample_k
        self.template = load_template(template_path, critique=critique)

    @property
    def version(self) -> str:
        return judge_version(self.model_name, self.template.digest, self.critique, self.principle_sample_k)

    @abstractmethod
    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        """P(slot A) per verdict prompt, in order; a VerdictParseError where it cannot be read."""

    @abstractmethod
    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        """Greedy continuation per prompt (critique mode); a VerdictParseError where none was made."""

    def judge(self, samples: Sequence[Sample], constitution: Constitution) -> list[JudgeVerdict]:
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
        version = self.version  # reads the model config: once per batch, not per sample
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
