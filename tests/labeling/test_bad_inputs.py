"""The bad-input corpus (tests/data/bad_inputs/, made by tests/data/make_bad_inputs.py).

Each file goes through ingest and Store.add_samples in one batch with fresh valid rows. A bad row
must become a quarantine record whose message names the sample, the field and the fix; the valid
rows must land; nothing may crash. Some kinds are *accepted*: markup, template syntax and RTL /
zero-width characters are ordinary text and must be stored literally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from labeling.ingest import load_records, parse_records
from labeling.settings import IngestSettings
from labeling.store import Store
from tests.labeling.conftest import DATA

BAD = DATA / "bad_inputs"
ROW1 = ":1"  # expected sample id "<source>:1": the row had no usable sample_id
FILE = "<file>"  # a whole-file problem: the sample id is the source itself


@dataclass(frozen=True)
class Case:
    file: str
    field: str | None  # None: accepted
    sample: str | list[str]  # quarantined: who is named; accepted: ids that must land
    fix: str = ""  # a fragment of the reason that tells the fix
    lands: tuple[str, ...] = ()  # valid rows later in the same file, which must still land


CASES = [
    Case("truncated_json.jsonl", "(row)", ROW1, "one complete JSON object per line"),
    Case("not_an_object.jsonl", "(row)", ROW1, "object per line"),
    Case("wrong_type_response.jsonl", "response_a", "bad-type", "make `response_a` a string"),
    Case("bool_response.jsonl", "response_b", "bad-bool", "a string"),
    Case("numeric_prompt.jsonl", "prompt", "bad-numprompt", "a string"),
    Case("missing_prompt.jsonl", "prompt", "bad-noprompt", "add `prompt`"),
    Case("missing_response.jsonl", "response_b", "bad-noresp", "add `response_b`"),
    Case("null_response.jsonl", "response_b", "bad-null", "give `response_b` as text"),
    Case("empty_response.jsonl", "response_a", "bad-empty", "real text, or drop the row"),
    Case("whitespace_response.jsonl", "response_a", "bad-ws", "real text, or drop the row"),
    Case("identical_responses.jsonl", "response_b", "bad-same", "two different responses"),
    Case("nul_byte.jsonl", "prompt", "bad-nul", "remove the \\u0000"),
    Case("invalid_utf8.jsonl", "(row)", ROW1, "re-encode the file as UTF-8"),
    Case("lone_surrogate_escape.jsonl", "prompt", "bad-surr", "re-encode the source text as valid UTF-8"),
    Case("lone_surrogate_bytes.jsonl", "(row)", ROW1, "re-encode the file as UTF-8"),
    Case("whitespace_id.jsonl", "sample_id", ROW1, "real text"),
    Case("bad_label.jsonl", "preferred", "bad-label", 'use "A" or "B"'),
    Case("contradicting_labels.jsonl", "reference_label", "bad-labels", "keep one"),
    Case("metadata_not_object.jsonl", "metadata", "bad-meta", "make it an object"),
    Case("metadata_nan.jsonl", "metadata", "bad-nan", "keep to strings, numbers"),
    Case("chat_unknown_role.jsonl", "prompt[1].role", "bad-role", "use one of system, user, assistant"),
    Case("chat_empty_list.jsonl", "prompt", "bad-chat-empty", "give at least one"),
    Case("chat_message_not_object.jsonl", "prompt[0]", "bad-chat-str", 'a {"role": ..., "content": ...} object'),
    Case("chat_content_not_text.jsonl", "prompt[0].content", "bad-chat-content", "a string"),
    Case("duplicate_id_different_content.jsonl", "sample_id", "dup-1", "give this row its own sample_id"),
    Case("conflicting_reingest.jsonl", "sample_id", "valid-1", "give this sample a new sample_id"),
    Case("hh_prefix_mismatch.jsonl", "rejected", "bad-hh-prefix", "must share the prompt"),
    Case("hh_no_assistant_turn.jsonl", "chosen", "bad-hh-turn", "ends with '\\n\\nAssistant: <reply>'"),
    Case("hh_empty_reply.jsonl", "chosen", "bad-hh-reply", "final Assistant reply is empty"),
    Case("hh_missing_rejected.jsonl", "rejected", "bad-hh-missing", "needs both `chosen` and `rejected`"),
    Case("empty_file.jsonl", "(rows)", FILE, "has no rows"),
    Case("deep_nesting.jsonl.gz", "(row)", ROW1, "flatten the row", ("ok-after-deep",)),
    Case("huge_integer.jsonl", "(row)", ROW1, "write such numbers as strings", ("ok-after-bigint",)),
    Case("lone_surrogate_metadata.jsonl", "metadata", "bad-surr-meta", "re-encode the source text as valid UTF-8"),
    Case("lone_surrogate_column.jsonl", "(column names)", "bad-surr-col", "re-encode the source text as valid UTF-8"),
    Case("metadata_too_deep.jsonl", "metadata", "bad-meta-deep", "flatten it"),
    Case("invisible_response.jsonl", "response_a", "bad-invisible", "only invisible characters"),
    Case("invisible_chat_content.jsonl", "prompt[0].content", "bad-invisible-chat", "only invisible characters"),
    Case("invisible_id.jsonl", "sample_id", ROW1, "only invisible characters"),
    Case("hh_invisible_reply.jsonl", "chosen", "bad-hh-invisible", "only invisible characters"),
    Case("identical_but_zero_width.jsonl", "response_b", "bad-zw-same", "two different responses"),
    Case("truncated_gzip.jsonl.gz", "(row)", ":4", "re-download or re-compress"),
    Case("not_parquet.parquet", "(row)", FILE, "rewrite it with pyarrow"),
    Case("wrong_schema.parquet", "(schema)", FILE, "need ['prompt', 'response_a', 'response_b']"),
    Case("wrong_column_type.parquet", "response_a", "bad-pq-type", "a string"),
    Case("empty_dataset", "(rows)", FILE, "has no rows"),
    # Accepted literally.
    Case("rtl_zero_width.jsonl", None, ["ok-rtl"]),
    Case("html.jsonl", None, ["ok-html"]),
    Case("script_tag.jsonl", None, ["ok-script"]),
    Case("labelstudio_template.jsonl", None, ["ok-template"]),
    Case("bom.jsonl", None, ["ok-bom"]),
    Case("crlf.jsonl", None, ["ok-crlf-1", "ok-crlf-2"]),
    Case("blank_lines.jsonl", None, ["ok-blank"]),
]
GENERATED = [Case("megabyte_text.jsonl", "response_a", "bad-huge", "over ingest.max_chars=20,000")]


@pytest.fixture
def stored(tmp_path: Path) -> Store:
    """A store that already holds tests/data/valid_generic.jsonl, as after an earlier run."""
    st = Store(f"sqlite:///{tmp_path / 'juryflow.db'}")
    samples, rejected = parse_records(load_records(DATA / "valid_generic.jsonl"), IngestSettings())
    assert rejected == [] and len(st.add_samples(samples, "valid").inserted) == 3
    return st


def fresh_valid(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.jsonl"
    rows = [{"sample_id": f"fresh-{i}", "prompt": f"q{i}", "response_a": "yes", "response_b": "no"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def megabyte_file(tmp_path: Path) -> Path:
    path = tmp_path / "megabyte_text.jsonl"
    row = {"sample_id": "bad-huge", "prompt": "p", "response_a": "x" * 1_048_576, "response_b": "b"}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def test_every_corpus_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(c.file for c in CASES)
    assert len(CASES) + len(GENERATED) >= 30


@pytest.mark.parametrize("case", CASES + GENERATED, ids=lambda c: c.file)
def test_bad_input_is_quarantined_or_stored_literally(case: Case, stored: Store, tmp_path: Path) -> None:
    path = megabyte_file(tmp_path) if case in GENERATED else BAD / case.file
    fresh = fresh_valid(tmp_path)
    records = [*load_records(fresh), *load_records(path)]
    samples, rejected = parse_records(records, IngestSettings())
    result = stored.add_samples(samples, "corpus")
    stored.add_quarantine(rejected)

    assert {"fresh-0", "fresh-1", "fresh-2"} <= set(result.inserted)
    assert len(stored.get_samples(["valid-1", "valid-2", "fresh-0"])) == 3
    assert stored.get_samples(["valid-1"])[0].response_b in ("Whatever.", "Thanks!")  # the original is untouched
    quarantined = stored.list_quarantine()
    if case.field is None:
        assert quarantined == [] and result.conflicts == []
        assert set(case.sample) <= set(result.inserted)
        assert_stored_literally(stored, path)
        return
    expected = {ROW1: f"{path}:1", ":4": f"{path}:4", FILE: str(path)}.get(case.sample, case.sample)
    matches = [q for q in quarantined if q.field == case.field and q.sample_id == expected]
    assert matches, f"no quarantine record for {expected!r}/{case.field!r} in {[q.message for q in quarantined]}"
    assert case.fix in matches[0].reason
    assert repr(expected) in matches[0].message and repr(case.field) in matches[0].message
    assert set(case.lands) <= set(result.inserted)


def assert_stored_literally(st: Store, path: Path) -> None:
    """Every accepted row's text is stored byte for byte: nothing escaped, stripped or interpreted."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    for line in filter(str.strip, raw.splitlines()):
        row = json.loads(line)
        sample = st.get_samples([row["sample_id"]])[0]
        assert sample.prompt == row["prompt"]
        assert {sample.response_a, sample.response_b} == {row["response_a"], row["response_b"]}
