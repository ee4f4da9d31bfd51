"""Validation of one row's fields: text, metadata, chat prompts, HH-RLHF transcripts.

Every check raises a FieldProblem whose message names the field's problem and its fix.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from labeling.schemas import ChatMessage

HH_MARKER = "\n\nAssistant:"
ROLES = ("system", "user", "assistant")
# Deeper metadata would still be stored, but json.dumps, pyarrow and the Prefect result serialiser
# each recurse per level and would fail later, far from the row (Python's default limit is 1,000).
MAX_METADATA_DEPTH = 100
# Characters that show nothing: format controls (Cf: zero-width space/joiners, word joiner, BOM,
# soft hyphen, bidi marks), spaces and line separators (Z*), control codes (Cc), and the few
# letters and marks that render blank (Hangul fillers, braille blank, grapheme joiner, variation selectors).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zs", "Zl", "Zp", "Cc"})
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f") | {chr(c) for c in range(0xFE00, 0xFE10)}
_VISIBLE_ASCII = re.compile("[!-~]")
# The ones that take no width at all, for telling two replies apart (Cf also holds visible signs,
# such as the Arabic number signs U+0600-0605, so this list is explicit).
_ZERO_WIDTH = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef]"
)


class FieldProblem(ValueError):
    """A row's field is unusable; ``field`` may be more precise than pydantic's location (``prompt[2].role``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def is_invisible(char: str) -> bool:
    return (
        char in _BLANK_LOOKING
        or unicodedata.category(char) in _INVISIBLE_CATEGORIES
        or "\U000e0100" <= char <= "\U000e01ef"  # variation selectors supplement
    )


def shows_nothing(value: str) -> bool:
    """True for text made only of invisible characters (an empty text included)."""
    # A visible ASCII character settles it at C speed; otherwise all() stops at the first visible one.
    return not _VISIBLE_ASCII.search(value) and all(map(is_invisible, value))


def without_zero_width(value: str) -> str:
    """The text without its zero-width characters (spaces and visible letters kept)."""
    return _ZERO_WIDTH.sub("", value)


def check_text(value: Any, field: str, max_chars: int) -> str:
    """The text itself, or a FieldProblem saying what is wrong and how to fix it."""
    if value is None:
        raise FieldProblem(field, f"is null: give `{field}` as text")
    if not isinstance(value, str):
        raise FieldProblem(
            field, f"is {short_repr(value)} of type {type(value).__name__}, not text: make `{field}` a string"
        )
    if not value.strip():
        raise FieldProblem(field, f"is empty or whitespace-only: give `{field}` real text, or drop the row")
    if "\x00" in value:
        raise FieldProblem(
            field, f"contains a NUL character at position {value.index(chr(0))}: remove the \\u0000 characters"
        )
    check_encodable(value, field)
    if len(value) > max_chars:
        raise FieldProblem(
            field,
            f"is {len(value):,} characters, over ingest.max_chars={max_chars:,}: shorten it, "
            "or raise the limit with JURYFLOW__INGEST__MAX_CHARS",
        )
    if shows_nothing(value):
        first = list(dict.fromkeys(value))[:3]
        shown = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, unicodedata.category(c))}" for c in first)
        raise FieldProblem(field, f"is only invisible characters ({shown}): give `{field}` real text, or drop the row")
    return value


def check_encodable(value: str, field: str) -> None:
    """A lone surrogate (from a JSON escape such as \\ud800) cannot be stored as UTF-8 anywhere."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FieldProblem(
            field,
            f"contains a lone surrogate U+{ord(value[exc.start]):04X} at position {exc.start} "
            "(broken UTF-16): re-encode the source text as valid UTF-8",
        ) from None


def check_metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldProblem(
            field,
            f"is a {type(value).__name__} ({short_repr(value)}): make it an object, "
            'e.g. {"tags": [...]}, or leave it out',
        )
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise FieldProblem(field, f"is not plain JSON ({exc}): keep to strings, numbers, lists and objects") from None
    # Each level takes at least two characters, so short metadata cannot be too deep: skip the walk.
    if len(encoded) > 2 * MAX_METADATA_DEPTH and _depth(value) > MAX_METADATA_DEPTH:
        raise FieldProblem(
            field, f"nests more than {MAX_METADATA_DEPTH} levels deep: flatten it, or store that part as a string"
        )
    check_encodable(encoded, field)  # a lone surrogate in a key or value cannot be stored
    return value


def _depth(value: Any) -> int:
    """How deeply lists and dicts nest, level by level without recursion (no depth can overflow the stack)."""
    level, frontier = 0, [value]
    while frontier and level <= MAX_METADATA_DEPTH:  # beyond the limit the exact figure does not matter
        level += 1
        children = (c for item in frontier for c in (item.values() if isinstance(item, dict) else item))
        frontier = [c for c in children if isinstance(c, dict | list)]
    return level


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class InputRow(BaseModel):
    """The generic input shape. Validators raise FieldProblem so each message carries its fix."""

    model_config = ConfigDict(extra="allow")

    sample_id: str | None = None
    prompt: str | list[ChatMessage]
    response_a: str
    response_b: str
    metadata: dict[str, Any] = {}
    preferred: str | None = None
    reference_label: str | None = None

    @field_validator("sample_id", mode="before")
    @classmethod
    def _id(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # numeric ids are common in exported datasets
        value = check_text(value, "sample_id", 256)
        if value != value.strip():
            raise FieldProblem("sample_id", f"{value!r} has leading/trailing whitespace: strip it")
        return value

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any, info: ValidationInfo) -> str | list[ChatMessage]:
        max_chars = info.context["max_chars"]
        if not isinstance(value, list):
            return check_text(value, "prompt", max_chars)
        if not value:
            raise FieldProblem("prompt", 'is an empty chat: give at least one {"role": "user", "content": ...} message')
        messages = []
        for i, message in enumerate(value):
            if not isinstance(message, dict):
                raise FieldProblem(
                    f"prompt[{i}]",
                    f"is {short_repr(message)} of type {type(message).__name__}: "
                    'make each message a {"role": ..., "content": ...} object',
                )
            if message.get("role") not in ROLES:
                raise FieldProblem(
                    f"prompt[{i}].role", f"is {short_repr(message.get('role'))}: use one of {', '.join(ROLES)}"
                )
            extra = set(message) - {"role", "content"}
            if extra:
                raise FieldProblem(f"prompt[{i}]", f"has unexpected keys {sorted(extra)}: keep only role and content")
            content = check_text(message.get("content"), f"prompt[{i}].content", max_chars)
            messages.append(ChatMessage(role=message["role"], content=content))
        return messages

    @field_validator("response_a", "response_b", mode="before")
    @classmethod
    def _response(cls, value: Any, info: ValidationInfo) -> str:
        return check_text(value, str(info.field_name), info.context["max_chars"])

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> dict[str, Any]:
        return check_metadata(value)

    @field_validator("preferred", "reference_label", mode="before")
    @classmethod
    def _label(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if value not in ("A", "B"):
            raise FieldProblem(str(info.field_name), f'is {short_repr(value)}: use "A" or "B", or leave it out')
        return value

    @model_validator(mode="after")
    def _pair(self) -> InputRow:
        # Zero-width characters ignored: two replies that differ only in them look the same to a reviewer.
        a, b = self.response_a, self.response_b
        if not (a.isascii() and b.isascii()):  # ASCII has no zero-width characters
            a, b = without_zero_width(a), without_zero_width(b)
        if a.strip() == b.strip():
            hidden = "" if self.response_a.strip() == self.response_b.strip() else " (but for zero-width characters)"
            raise FieldProblem(
                "response_b",
                f"is identical to response_a{hidden}: a preference pair needs two different "
                "responses; drop the row or fix the copy",
            )
        if self.preferred and self.reference_label and self.preferred != self.reference_label:
            raise FieldProblem(
                "reference_label", f"{self.reference_label!r} contradicts preferred={self.preferred!r}: keep one"
            )
        return self


def split_hh(chosen: Any, rejected: Any, max_chars: int) -> tuple[str, str, str]:
    """HH-RLHF transcripts -> (shared prompt up to the last Assistant turn, chosen reply, rejected reply)."""
    chosen = check_text(chosen, "chosen", 10 * max_chars)
    rejected = check_text(rejected, "rejected", 10 * max_chars)
    prefixes = []
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        cut = text.rfind(HH_MARKER)
        if cut < 0:
            raise FieldProblem(
                field, "has no '\\n\\nAssistant:' turn: an HH-RLHF transcript ends with '\\n\\nAssistant: <reply>'"
            )
        prefixes.append(text[: cut + len(HH_MARKER)])
    if prefixes[0] != prefixes[1]:
        at = next((i for i, (a, b) in enumerate(zip(*prefixes, strict=False)) if a != b), min(map(len, prefixes)))
        raise FieldProblem(
            "rejected",
            f"its dialogue before the last Assistant turn differs from chosen's at character {at}: "
            "both transcripts must share the prompt; fix the pair or drop the row",
        )
    prompt = check_text(prefixes[0], "prompt", max_chars)
    replies = []
    for field, text in (("chosen", chosen), ("rejected", rejected)):
        reply = text[len(prompt) :].strip()
        if not reply:
            raise FieldProblem(field, "its final Assistant reply is empty: a pair needs two replies; drop the row")
        replies.append(check_text(reply, field, max_chars))
    return prompt, replies[0], replies[1]
