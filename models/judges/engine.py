"""The judge's engine: a loaded model that scores verdict prompts and writes critiques.

An engine knows nothing of constitutions, templates or A/B orders; the constitutional recipe
(``models.judges.constitutional.ConstitutionalJudge``) builds the prompts and reads the verdicts.
This is distilabel's split of an ``LLM`` from the ``Task`` that prompts it: one loaded engine
serves the verdict-mode and the critique-mode recipe alike, so critique escalation on vLLM does
not load a second copy of the model on the same GPU. One implementation per backend family:
``TransformersEngine``, ``VLLMEngine``, ``OpenAIEngine``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence

from models.judges.prompting import VerdictParseError

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


class JudgeEngine(ABC):
    """Load a model, read P(slot A) after a verdict prompt, generate greedy continuations.

    ``load()`` acquires the heavy resources (imports, weights, an HTTP client) and is idempotent;
    ``unload()`` frees them.
    """

    name: str = "engine"  # the backend family
    model_name: str  # the model path or served name: part of the judge version

    @property
    @abstractmethod
    def identity(self) -> Hashable:
        """What tells two engines apart (backend, model, placement): the key the task cache shares them by."""

    def load(self) -> None:  # noqa: B027 - optional hook
        pass

    def unload(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def slot_a_probabilities(self, prompts: Sequence[str]) -> list[SlotScore]:
        """P(slot A) per verdict prompt, in order; a VerdictParseError where it cannot be read."""

    @abstractmethod
    def generate(self, prompts: Sequence[str], max_tokens: Sequence[int]) -> list[str | VerdictParseError]:
        """Greedy continuation per prompt (critique mode); a VerdictParseError where none was made."""

    def __enter__(self) -> JudgeEngine:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()
