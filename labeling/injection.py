"""Pattern rules that flag samples which may try to steer the judge (prompt injection).

A flagged sample is not judged by a model alone: routing sends it to humans with the reason
``possible_injection``. The rules favour precision on ordinary chat text (the false-positive
rate on HH-RLHF harmless dialogues is measured in tests/labeling/test_injection.py) while
catching the common attack shapes listed in OWASP LLM01 (prompt injection): instruction
overrides, forged verdicts and turns, chat control tokens, and appeals to the judge or the
constitution. Pattern rules are a cheap first line, not a proof of safety.

``CONTROL_TOKEN`` is also what the judge prompt's neutraliser (models/judges/prompting.py) escapes,
so a token that is flagged here is exactly a token that cannot act as a real special token there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from labeling.schemas import Sample

# Chat-template control tokens: most tokenizers parse the literal string as the real special token.
CONTROL_TOKEN_PATTERN = (
    r"<\|[^<>|\n]{0,64}\|>"  # <|im_start|>, <|eot_id|>, <|endoftext|>, <|start_header_id|> ...
    r"|</?s>"  # Llama/Mistral BOS/EOS
    r"|\[/?INST\]"  # Llama-2 / Mistral instruction brackets
    r"|<</?SYS>>"  # Llama-2 system block
    r"|<(?:start|end)_of_turn>"  # Gemma
    r"|</?(?:bos|eos|pad|unk)>"
)
CONTROL_TOKEN = re.compile(CONTROL_TOKEN_PATTERN, re.IGNORECASE)

_JUDGE = r"(?:judge|evaluator|grader|rater|annotator|labell?er|reviewer|assessor)"
_LETTER_REF = r"(?:response|answer|reply|option|completion|output|assistant)\s*\(?[AB12]\)?"
_SELF_REF = r"(?:this|my|the\s+(?:above|following|present))\s+(?:response|answer|reply|completion|output)"
_PRAISE = (
    r"(?:best|better|superior|preferred|winner|winning\s+(?:one|response)|correct\s+(?:one|choice)|more\s+helpful)"
)


@dataclass(frozen=True)
class InjectionRule:
    name: str
    pattern: re.Pattern[str]
    responses_only: bool = False  # patterns that are normal in a prompt transcript but not in a reply


def _rule(name: str, pattern: str, responses_only: bool = False) -> InjectionRule:
    return InjectionRule(name, re.compile(pattern, re.IGNORECASE | re.MULTILINE | re.DOTALL), responses_only)


RULES: tuple[InjectionRule, ...] = (
    _rule(
        "ignore_instructions",
        r"\b(?:ignore|disregard|forget|override|bypass)\s+(?:all\s+|any\s+)?(?:of\s+)?"
        r"(?:the\s+|your\s+|my\s+|these\s+)?"
        r"(?:previous|prior|above|earlier|preceding|original|system|judging|evaluation)\s+"
        r"(?:instructions?|prompts?|rules|directions|guidelines|principles|criteria|constitution)",
    ),
    _rule(
        "new_instructions",
        r"(?:^|\n)\s*(?:new|updated|revised|real|actual)\s+(?:system\s+)?(?:instructions?|rules|task)\s*:",
    ),
    _rule(
        "fake_verdict",
        r"(?:^|\n)[\s>*#_-]*(?:final\s+)?(?:verdict|judg(?:e)?ment|evaluation\s+result|preferred\s+response)\s*[:=]\s*"
        r"\(?(?:response\s+)?[AB]\b",
    ),
    _rule("chat_control_token", CONTROL_TOKEN_PATTERN),
    _rule(
        "delimiter_spoof",
        r"<<<\s*(?:response|conversation|prompt)|(?:response\s+[AB]|conversation)\s*>>>"
        r"|\b(?:end|begin|start)\s+of\s+(?:response|answer|reply)\s+[AB]\b",
    ),
    _rule(
        "turn_forgery",
        # A reply that stages a whole exchange (a user turn then an assistant turn), or a system turn.
        r"(?:^|\n)\s*(?:human|user)\s*:.{0,2000}?\n\s*(?:assistant|ai)\s*:"
        r"|(?:^|\n)\s*(?:system|developer)\s*:|^\s*###\s*(?:system|instruction)",
        responses_only=True,
    ),
    _rule(
        "addresses_judge",
        rf"\b(?:dear|attention|hey|note\s+(?:to|for)(?:\s+the)?|message\s+(?:to|for)(?:\s+the)?|"
        rf"you\s+are\s+(?:the|an?)(?:\s+ai|\s+impartial)?|to\s+the\s+ai)\s+{_JUDGE}s?\b"
        # "as the judge, you ..." addresses the judge; "I would not act as the judge" does not.
        rf"|\bas\s+(?:the|an?)(?:\s+ai|\s+impartial)?\s+{_JUDGE}\s*,?\s+you\b",
    ),
    _rule(
        "judge_must",
        rf"\b{_JUDGE}s?\s*(?:,\s*)?(?:must|should|will|has\s+to|is\s+required\s+to|needs?\s+to)\s+"
        r"(?:choose|pick|select|prefer|rate|score|output|answer|respond|say|favou?r|vote)"
        r"|\b(?:ai|model|llm|system)s?\s+(?:model\s+)?(?:evaluating|judging|grading|reviewing|comparing)\s+"
        r"(?:this|these|the\s+responses)\b[^.\n]{0,40}\b(?:must|should|has\s+to|needs?\s+to)\b",
    ),
    _rule(
        "constitution_claim",
        r"\b(?:constitution|principles|guidelines|rubric|judging\s+criteria)\b[^.\n]{0,60}"
        r"\b(?:says?|states?|requires?|demands?|dictates?|means?)\b[^.\n]{0,60}"
        rf"(?:{_SELF_REF}|{_LETTER_REF})[^.\n]{{0,30}}{_PRAISE}",
    ),
    _rule(
        "self_promotion",
        rf"(?:{_SELF_REF}|{_LETTER_REF})\s+(?:is|should\s+be|must\s+be)\s+"
        r"(?:clearly\s+|obviously\s+|definitely\s+|rated\s+)?"
        rf"(?:the\s+)?{_PRAISE}"
        rf"|\b(?:choose|pick|select|prefer|vote\s+for|rate)\s+(?:{_SELF_REF}|{_LETTER_REF}|me)\b",
    ),
    _rule(
        "role_play_system",
        r"\byou\s+are\s+now\s+(?:in\s+)?(?:developer|admin|god|jailbreak|dan|unrestricted|debug)\b"
        r"|\b(?:enter|enable|activate)\s+(?:developer|admin|god|jailbreak|debug)\s+mode\b"
        r"|\b(?:system|developer)\s+(?:prompt|message|override)\s*:"
        r"|\[(?:system|admin)\]|<\s*/?\s*system\s*>",
    ),
)


def detect_injection(sample: Sample) -> list[str]:
    """Names of the rules the sample matches (sorted); empty when it looks clean."""
    prompt = sample.prompt_text
    responses = (sample.response_a, sample.response_b)
    hits = set()
    for rule in RULES:
        texts: Sequence[str] = responses if rule.responses_only else (prompt, *responses)
        if any(rule.pattern.search(text) for text in texts):
            hits.add(rule.name)
    return sorted(hits)
