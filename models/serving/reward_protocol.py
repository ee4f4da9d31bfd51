"""Request bodies of the reward server, checked and turned into what to score. No HTTP, no model.

Two endpoints, one scoring path:

- ``POST /get_reward``: OpenRLHF's remote reward-model protocol (``--reward.remote_url``), as
  openrlhf 0.11.2 speaks it (``openrlhf/utils/agent.py``, ``_fetch_rewards_via_http``; the
  answer's shape is that of its own ``openrlhf/cli/serve_rm.py``). The body is
  ``{"query": [str], "prompts": [str], "labels": [...]}``: each query is the decoded prompt plus
  response (chat template and special tokens included), each prompt the templated prompt, each
  label the dataset's ``--data.label_key`` value. The answer is
  ``{"rewards": [float], "scores": [float], "extra_logs": {}}``.
  When a label is a non-empty string (juryflow's export puts the plain prompt there), the
  response is the query minus its templated prompt, and (label, response) is scored as the
  reward model was trained: ``format_pair_text``. Otherwise the query is scored whole, as
  OpenRLHF's own server does.
- ``POST /score``: ``{"prompts": [str], "responses": [str]}`` -> ``{"rewards": [float]}``, for
  anything that has the pairs already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class RequestError(ValueError):
    """A request the client must fix; the message names the field, the index and the fix."""


class TooManyTextsError(RequestError):
    """More texts in one request than the server takes (answered 413)."""


@dataclass(frozen=True)
class ScoreItem:
    """One text to score: a (prompt, response) pair, or a whole text when ``prompt`` is None."""

    prompt: str | None
    response: str


def _string_list(body: dict[str, Any], key: str, max_items: int) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not value:
        raise RequestError(f"field {key!r} must be a non-empty list of strings, got {type(value).__name__}")
    if len(value) > max_items:
        raise TooManyTextsError(f"field {key!r} has {len(value)} items, more than the server's max_texts_per_request="
                           f"{max_items}: split the request")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise RequestError(f"field {key!r}[{i}] must be a string, got {type(item).__name__}")
    return value


def strip_end(text: str, suffixes: Sequence[str]) -> str:
    """``text`` without trailing end-of-turn tokens (and whitespace), however many repeat."""
    text = text.rstrip()
    changed = True
    while changed:
        changed = False
        for suffix in suffixes:
            if suffix and text.endswith(suffix):
                text, changed = text[: -len(suffix)].rstrip(), True
    return text


def parse_openrlhf_request(body: Any, max_items: int, strip_suffixes: Sequence[str] = ()) -> list[ScoreItem]:
    """The items an OpenRLHF ``/get_reward`` body asks to score (see the module docstring)."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object with a 'query' list, got {type(body).__name__}")
    queries = _string_list(body, "query", max_items)
    prompts, labels = body.get("prompts"), body.get("labels")
    for key, value in (("prompts", prompts), ("labels", labels)):
        if value is not None and (not isinstance(value, list) or len(value) != len(queries)):
            raise RequestError(f"field {key!r} must be a list as long as 'query' ({len(queries)} items), or absent")
    items = []
    for i, query in enumerate(queries):
        label = labels[i] if labels is not None else None
        if not (isinstance(label, str) and label):
            items.append(ScoreItem(prompt=None, response=query))
            continue
        templated = prompts[i] if prompts is not None else None
        if not isinstance(templated, str) or not query.startswith(templated):
            raise RequestError(
                f"query[{i}] does not start with prompts[{i}]: the response cannot be cut out of it; "
                "send the templated prompt the query was generated from, or an empty label to score the query whole"
            )
        items.append(ScoreItem(prompt=label, response=strip_end(query[len(templated):], strip_suffixes)))
    return items


def parse_score_request(body: Any, max_items: int) -> list[ScoreItem]:
    """The (prompt, response) pairs of a ``/score`` body."""
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object with 'prompts' and 'responses', got {type(body).__name__}")
    prompts = _string_list(body, "prompts", max_items)
    responses = _string_list(body, "responses", max_items)
    if len(prompts) != len(responses):
        raise RequestError(f"'prompts' has {len(prompts)} items and 'responses' {len(responses)}: send one response per prompt")
    return [ScoreItem(prompt=p, response=r) for p, r in zip(prompts, responses, strict=True)]


def openrlhf_answer(rewards: Sequence[float]) -> dict[str, Any]:
    """The answer OpenRLHF reads: ``rewards`` (and ``scores``, used for dynamic filtering)."""
    return {"rewards": list(rewards), "scores": list(rewards), "extra_logs": {}}
