"""Judge prompts and the parsing of judge output: small pure functions shared by every backend.

The prompt is a plain completion string, identical for vLLM, an OpenAI-compatible completions
server and transformers, so all three score exactly the same text. It opens with the
constitution's principles (a prefix shared across samples, which vLLM's prefix cache reuses),
then the prompt and the two responses in delimited blocks, and ends with ``Verdict:`` so that the
NEXT token is the verdict letter, written with a leading space (`` A`` / `` B``), as it would be in
running text. ``verdict_probability`` accepts both the spaced and the bare letter.

Position bias: every sample is judged twice, original order (A in slot A) and swapped order
(B in slot A). ``p_a_swapped = 1 - P(slot A | swapped prompt)``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from labeling.constitution import Principle
from labeling.injection import CONTROL_TOKEN
from labeling.schemas import Choice, Sample

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
DEFAULT_VERDICT_TEMPLATE = TEMPLATES_DIR / "verdict.jinja"
DEFAULT_CRITIQUE_TEMPLATE = TEMPLATES_DIR / "critique.jinja"

# Token strings that count as each verdict (decoded text of a single token).
VERDICT_TOKENS: dict[Choice, tuple[str, ...]] = {"A": ("A", " A"), "B": ("B", " B")}
# What the scoring prompt ends with; the next token is the verdict letter.
VERDICT_CUE = "Verdict:"
# Our own block delimiters (see the templates); sample text must never contain them.
DELIMITER_OPEN = "<<<"
DELIMITER_CLOSE = ">>>"


class VerdictParseError(ValueError):
    """The judge's output has no readable verdict; it is recorded, never turned into a label."""


@dataclass(frozen=True)
class JudgeTemplate:
    """A Jinja prompt template plus the source text its digest (part of the judge version) comes from."""

    source: str
    path: str
    critique: bool
    _compiled: jinja2.Template = field(repr=False, compare=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()[:12]

    def render(self, **context: object) -> str:
        # rstrip: the verdict prompt must end exactly at the cue, so the next token is the letter.
        return self._compiled.render(**context).rstrip()


def load_template(path: str | Path | None = None, critique: bool = False) -> JudgeTemplate:
    """Load a judge template; ``None`` picks the shipped verdict or critique template."""
    if path is None:
        path = DEFAULT_CRITIQUE_TEMPLATE if critique else DEFAULT_VERDICT_TEMPLATE
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"judge template {str(path)!r} not found: set judge.template_path or unset it") from None
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)
    try:
        compiled = env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"judge template {str(path)!r} line {exc.lineno}: {exc.message}") from None
    return JudgeTemplate(source=source, path=str(path), critique=critique, _compiled=compiled)


# Sample text is untrusted. Chat-template control tokens (labeling.injection.CONTROL_TOKEN, the
# same pattern the injection rule flags) would be parsed as real special tokens by
# most tokenizers (they match the literal string), letting a response end its turn, open a fake
# system turn or stop generation. Our own delimiters would let it close its block early, and a line
# starting with "Verdict:" could pose as the verdict (critique mode parses such lines).
# We escape rather than delete, so a human reviewing the sample still sees what was there.
_FAKE_VERDICT_LINE = re.compile(r"^([ \t>*#_-]*)(verdict\s*:)", re.IGNORECASE | re.MULTILINE)


def _escape_control_token(match: re.Match[str]) -> str:
    token = match.group(0)
    # A space after the first character breaks the exact-string special-token match.
    return token[0] + " " + token[1:]


def neutralise(text: str) -> str:
    """Escape chat control tokens, our block delimiters and fake verdict lines in untrusted text."""
    text = CONTROL_TOKEN.sub(_escape_control_token, text)
    # Loop: "<<<<" -> "<< <<" could still hold "<<<" after one pass over overlapping runs.
    while DELIMITER_OPEN in text:
        text = text.replace(DELIMITER_OPEN, "<< <")
    while DELIMITER_CLOSE in text:
        text = text.replace(DELIMITER_CLOSE, "> >>")
    return _FAKE_VERDICT_LINE.sub(lambda m: f"{m.group(1)}(quoted) {m.group(2)}", text)


def build_judge_prompts(
    sample: Sample,
    principles: Sequence[Principle],
    template: JudgeTemplate | None = None,
    critique: bool = False,
) -> tuple[str, str]:
    """The (original order, swapped order) prompts for one sample."""
    if template is None:
        template = load_template(None, critique=critique)
    if not principles:
        raise ValueError(f"sample {sample.sample_id!r}: no principles to judge against; check the constitution")
    context = {
        "principles": [{"id": p.id, "text": p.text} for p in principles],
        "prompt": neutralise(sample.prompt_text),
        "critique": critique,
        "verdict_cue": VERDICT_CUE,
    }
    a, b = neutralise(sample.response_a), neutralise(sample.response_b)
    original = template.render(**context, response_a=a, response_b=b)
    swapped = template.render(**context, response_a=b, response_b=a)
    return original, swapped


def verdict_probability(logprobs: Mapping[str, float]) -> float:
    """P(slot A) renormalised over the verdict tokens, from next-token log-probs keyed by token text.

    Both " A" and "A" count for A (likewise B); their probabilities are summed. A letter missing
    from a top-k list counts as probability 0. Raises VerdictParseError when neither letter is present.
    """
    mass = {
        choice: sum(math.exp(logprobs[t]) for t in tokens if t in logprobs) for choice, tokens in VERDICT_TOKENS.items()
    }
    present = [t for tokens in VERDICT_TOKENS.values() for t in tokens if t in logprobs]
    if not present:
        shown = sorted(logprobs, key=lambda t: -logprobs[t])[:5]
        raise VerdictParseError(f"no verdict token among the next-token candidates {shown!r}; expected one of A/B")
    total = mass["A"] + mass["B"]
    if total <= 0.0 or math.isnan(total):
        raise VerdictParseError(f"verdict tokens have zero or NaN probability: {dict(logprobs)!r}")
    return mass["A"] / total


def p_a_from_orders(p_slot_a_original: float, p_slot_a_swapped: float) -> tuple[float, float]:
    """(p_a_original, p_a_swapped): in the swapped prompt slot A shows response B."""
    return p_slot_a_original, 1.0 - p_slot_a_swapped


@dataclass(frozen=True)
class Critique:
    """A parsed critique: one line per principle, then the verdict letter."""

    critiques: dict[str, str]
    verdict: Choice
    body: str  # the generated text before the verdict line, used to build the scoring prompt

    def as_text(self) -> str:
        return "\n".join(f"{pid}: {line}" for pid, line in self.critiques.items())


_CRITIQUE_LINE = re.compile(r"^\s*(?:[-*]\s*)?\[?([a-z0-9_.-]+)\]?\s*:\s*(\S.*?)\s*$", re.IGNORECASE)
_VERDICT_LINE = re.compile(r"^\s*(?:[-*]\s*)?verdict\s*:\s*(.*?)\s*$", re.IGNORECASE)
_VERDICT_VALUE = re.compile(r"^\(?([AB])\)?\.?$")


def parse_critique(text: str, principle_ids: Sequence[str]) -> Critique:
    """Parse ``<principle_id>: <critique>`` lines and a final ``Verdict: A|B`` line."""
    critiques: dict[str, str] = {}
    verdicts: list[str] = []
    body_lines: list[str] = []
    wanted = set(principle_ids)
    for line in text.splitlines():
        verdict_match = _VERDICT_LINE.match(line)
        if verdict_match:
            value = _VERDICT_VALUE.match(verdict_match.group(1))
            if value is None:
                raise VerdictParseError(f"verdict line {line.strip()!r} is not 'Verdict: A' or 'Verdict: B'")
            verdicts.append(value.group(1))
            continue
        if verdicts:
            continue  # text after the verdict (e.g. the model rambling on) is ignored
        body_lines.append(line)
        crit_match = _CRITIQUE_LINE.match(line)
        if crit_match and crit_match.group(1).lower() in wanted and crit_match.group(1).lower() not in critiques:
            critiques[crit_match.group(1).lower()] = crit_match.group(2)
    if not verdicts:
        raise VerdictParseError(f"no 'Verdict: A|B' line in the critique output: {text[-200:]!r}")
    if len(set(verdicts)) > 1:
        raise VerdictParseError(f"critique output gives both verdicts {verdicts!r}")
    missing = [pid for pid in principle_ids if pid not in critiques]
    if missing:
        raise VerdictParseError(f"critique output has no line for principles {missing!r}")
    body = "\n".join(body_lines).rstrip()
    return Critique(critiques=critiques, verdict=verdicts[0], body=body)  # type: ignore[arg-type]


def critique_scoring_prompt(critique_prompt: str, critique: Critique) -> str:
    """The critique prompt + the generated critique + the cue: the next token is the verdict letter."""
    return f"{critique_prompt}{critique.body}\n{VERDICT_CUE}"


def critique_max_tokens(n_principles: int) -> int:
    """Generation budget in critique mode: about one short sentence per principle plus the verdict."""
    return 48 * n_principles + 16
