"""The two backend families. Each has one interface and several implementations.

Like distilabel's ``LLM`` base: ``load()`` acquires heavy resources (imports, weights,
engines, HTTP pools), ``unload()`` frees them, and the work method takes a batch.
Heavy third-party imports happen inside ``load()`` so importing juryflow stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from labeling.constitution import Constitution
from labeling.schemas import AILabel, JudgeVerdict, Sample


class AILabeler(ABC):
    """Says which response is better, with a calibrated ``p_a``; never sees ``reference_label``."""

    name: str = "labeler"

    @property
    @abstractmethod
    def version(self) -> str:
        """Identifies the exact weights/head, so labels can be traced and calibrations stored."""

    def load(self) -> None:  # noqa: B027 - optional hook
        pass

    def unload(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def label(self, samples: Sequence[Sample]) -> list[AILabel]:
        """One ``AILabel`` per sample, in order."""

    def __enter__(self) -> AILabeler:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()


class Judge(ABC):
    """Judges samples against a constitution, in both A/B orders.

    The constitutional judges are one recipe on one engine per backend family (see
    ``models.judges.engine`` and ``models.judges.constitutional``).
    """

    name: str = "judge"

    @property
    @abstractmethod
    def version(self) -> str:
        """Model, prompt-template, options and constitution identity: verdicts, final labels and
        snapshots carry it, so an edited constitution is told apart from the old one."""

    def load(self) -> None:  # noqa: B027 - optional hook
        pass

    def unload(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def judge(self, samples: Sequence[Sample], constitution: Constitution) -> list[JudgeVerdict]:
        """One ``JudgeVerdict`` per sample, in order. Failures are recorded in ``parse_error``."""

    def __enter__(self) -> Judge:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()
