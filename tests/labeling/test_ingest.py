"""labeling/ingest/: readers, the generic and HH-RLHF shapes, validation, the A/B shuffle."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from labeling.ingest import HH_MARKER, RawRecord, load_records, parse_records
from labeling.schemas import ChatMessage, content_hash, unit_hash
from labeling.settings import IngestSettings
from tests.labeling.conftest import DATA

HH_REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf-harmless-dev.jsonl.gz"
SETTINGS = IngestSettings()


def parse(*rows: dict[str, Any], settings: IngestSettings = SETTINGS):
    return parse_records([RawRecord("mem", i + 1, data=r) for i, r in enumerate(rows)], settings)


def base(**fields: Any) -> dict[str, Any]:
    row = {"sample_id": "x1", "prompt": "p", "response_a": "good", "response_b": "bad"}
    row.update(fields)
    return {k: v for k, v in row.items() if v is not ...}


def test_generic_rows_keep_content_labels_and_metadata() -> None:
    samples, rejected = parse_records(load_records(DATA / "valid_generic.jsonl"), SETTINGS)
    assert rejected == []
    by_id = {s.sample_id: s for s in samples}
    hashed = content_hash("What is 2+2?", "4", "5")  # no sample_id given: hash of the content as written
    assert set(by_id) == {"valid-1", "valid-2", hashed}
    chat = by_id["valid-2"]
    assert chat.prompt == [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Name a colour."),
    ]
    preferred_text = chat.response_a if chat.reference_label == "A" else chat.response_b
    assert preferred_text == "Blue."  # the known label follows its response through the shuffle
    assert by_id[hashed].reference_label in ("A", "B")
    assert by_id["valid-1"].metadata["origin"] == "fixture" and by_id["valid-1"].reference_label is None


def test_shuffle_is_deterministic_and_seeded_by_id() -> None:
    rows = [
        base(sample_id=f"id-{i}", response_a=f"first {i}", response_b=f"second {i}", preferred="A") for i in range(200)
    ]
    samples, _ = parse(*rows)
    swapped = [s.response_a.startswith("second") for s in samples]
    assert swapped == [unit_hash("ab", s.sample_id) < 0.5 for s in samples]
    assert all(s.metadata["ab_swapped"] == w for s, w in zip(samples, swapped, strict=True))
    assert [s.reference_label for s in samples] == ["B" if w else "A" for w in swapped]
    assert 60 < sum(swapped) < 140
    assert parse(*rows)[0] == samples


def test_hh_rows_split_at_the_last_assistant_turn() -> None:
    samples, rejected = parse_records(load_records(DATA / "hh_small.jsonl"), SETTINGS)
    assert len(samples) == 3
    joke = next(s for s in samples if "joke" in s.prompt_text)
    assert joke.prompt == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Tell me a joke.\n\nAssistant:"
    chosen = joke.response_a if joke.reference_label == "A" else joke.response_b
    rejected_reply = joke.response_b if joke.reference_label == "A" else joke.response_a
    assert chosen == "Why did the chicken cross the road? To get to the other side." and rejected_reply == "No."
    assert joke.sample_id == content_hash(joke.prompt, chosen, rejected_reply)  # independent of the shuffle
    [bad] = rejected
    assert (bad.sample_id, bad.row, bad.field) == (f"{DATA / 'hh_small.jsonl'}:4", 4, "rejected")
    assert "must share the prompt" in bad.reason


def test_chat_prompt_and_extra_columns() -> None:
    chat = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "and?"},
    ]
    samples, rejected = parse(base(prompt=chat, origin="forum", metadata={"lang": "en"}))
    assert rejected == []
    assert samples[0].prompt_text == "Human: hi\n\nAssistant: hello\n\nHuman: and?"
    assert samples[0].metadata["origin"] == "forum" and samples[0].metadata["lang"] == "en"


@pytest.mark.parametrize(
    ("row", "field", "fix"),
    [
        (base(prompt=...), "prompt", "add `prompt`"),
        (base(response_a=...), "response_a", "add `response_a`"),
        (base(response_a=""), "response_a", "real text"),
        (base(response_b="\u00a0 \n"), "response_b", "real text"),
        (base(response_b="good"), "response_b", "two different responses"),
        (base(response_a=["good"]), "response_a", "a string"),
        (base(prompt=3.5), "prompt", "a string"),
        (base(response_a="x" * 20_001), "response_a", "JURYFLOW__INGEST__MAX_CHARS"),
        (base(prompt="a\x00b"), "prompt", "NUL"),
        (base(response_a="\udfff"), "response_a", "lone surrogate"),
        (base(prompt=[{"role": "bot", "content": "x"}]), "prompt[0].role", "system, user, assistant"),
        (base(prompt=[{"role": "user", "content": "x", "name": "n"}]), "prompt[0]", "keep only role and content"),
        (base(prompt=[]), "prompt", "at least one"),
        (base(preferred="a"), "preferred", '"A" or "B"'),
        (base(metadata=[1]), "metadata", "make it an object"),
        (base(sample_id=" x1 "), "sample_id", "strip it"),
        (base(sample_id=True), "sample_id", "a string"),
        ({"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": 7}, "rejected", "a string"),
    ],
)
def test_each_rejection_names_field_and_fix(row: dict[str, Any], field: str, fix: str) -> None:
    samples, rejected = parse(row)
    assert samples == []
    [record] = rejected
    assert record.field == field and fix in record.reason
    assert record.sample_id == (
        row["sample_id"].strip() and row["sample_id"] if isinstance(row.get("sample_id"), str) else "mem:1"
    )


def test_max_chars_comes_from_settings() -> None:
    assert parse(base(response_a="x" * 50), settings=IngestSettings(max_chars=49))[1][0].field == "response_a"
    assert parse(base(response_a="x" * 49), settings=IngestSettings(max_chars=49))[1] == []


def test_numeric_ids_become_text() -> None:
    samples, _ = parse(base(sample_id=17))
    assert samples[0].sample_id == "17"


def test_duplicates_in_one_input() -> None:
    samples, rejected = parse(base(), base(), base(response_b="other"))
    assert len(samples) == 1 and samples[0].response_a in ("good", "bad")
    assert [(r.sample_id, r.row, r.field) for r in rejected] == [("x1", 3, "sample_id")]


def test_gzip_parquet_and_datasets_dirs(tmp_path: Path) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [base(sample_id=f"r{i}", prompt=f"q{i}") for i in range(5)]
    gz = tmp_path / "rows.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:3]), "test": datasets.Dataset.from_list(rows[3:])}
    ).save_to_disk(str(tmp_path / "dd"))
    datasets.DatasetDict(
        {"a": datasets.Dataset.from_list(rows[:2]), "b": datasets.Dataset.from_list(rows[2:])}
    ).save_to_disk(str(tmp_path / "dd_no_train"))
    for name, n in [("rows.jsonl.gz", 5), ("rows.parquet", 5), ("ds", 5), ("dd", 3), ("dd_no_train", 5)]:
        samples, rejected = parse_records(load_records(tmp_path / name), SETTINGS)
        assert rejected == [] and sorted(s.sample_id for s in samples) == [f"r{i}" for i in range(n)], name


def test_unusable_paths_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(load_records(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unknown format"):
        list(load_records(tmp_path / "rows.csv"))
    (tmp_path / "plain_dir").mkdir()
    [record] = load_records(tmp_path / "plain_dir")
    assert "save_to_disk" in (record.error or "")


@pytest.mark.skipif(not HH_REAL.is_file(), reason=f"real HH-RLHF sample not found at {HH_REAL}")
def test_real_hh_rlhf_file() -> None:
    records = list(load_records(HH_REAL))
    samples, rejected = parse_records(records, SETTINGS)
    assert len(samples) + len(rejected) == len(records) == 1200
    assert len(samples) >= 1150
    assert all(s.prompt_text.endswith(HH_MARKER) and s.reference_label in ("A", "B") for s in samples)
    share_a = sum(s.reference_label == "A" for s in samples) / len(samples)
    assert 0.4 < share_a < 0.6  # the shuffle hides which slot holds `chosen`
    assert all(r.field in ("chosen", "rejected") and r.row for r in rejected)


# -- the JSON decoder failing, invisible text (labeling/ingest/readers.py, validation.py) -----------


def jsonl(tmp_path: Path, *lines: bytes) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_rows_the_decoder_fails_on_are_quarantined_by_row_and_the_file_goes_on(tmp_path: Path) -> None:
    ok = json.dumps(base(sample_id="ok")).encode()
    path = jsonl(
        tmp_path,
        b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"n": -' + b"7" * 4_301 + b"}",
        ok,
    )
    samples, rejected = parse_records(load_records(path), SETTINGS)
    assert [s.sample_id for s in samples] == ["ok"]
    assert [(q.row, q.field) for q in rejected] == [(1, "(row)"), (2, "(row)")]
    assert "deeper than the JSON decoder can follow" in rejected[0].reason
    assert "integer literal of 4,301 digits" in rejected[1].reason and "as strings" in rejected[1].reason


def test_integers_up_to_pythons_limit_still_parse(tmp_path: Path) -> None:
    path = jsonl(tmp_path, json.dumps(base(metadata={"n": int("9" * 4_300)})).encode())
    samples, rejected = parse_records(load_records(path), SETTINGS)
    assert rejected == [] and samples[0].metadata["n"] == int("9" * 4_300)


@pytest.mark.parametrize(
    "text",
    [
        "\u200b",
        "\u200c\u200d",
        "\u2060\ufeff",
        "\u00ad",
        "\u202e\u202c",
        "\u3164\u2800",
        "\ufe0f\u034f",
        "\u00a0\u200b",
    ],
)
def test_text_made_only_of_invisible_characters_counts_as_empty(text: str) -> None:
    _, rejected = parse(base(response_a=text))
    assert [(q.field, q.sample_id) for q in rejected] == [("response_a", "x1")]
    assert "only invisible characters" in rejected[0].reason and "U+" in rejected[0].reason


def test_visible_text_with_invisible_characters_is_kept_literally() -> None:
    samples, rejected = parse(base(response_a="\u200bgood\u2060", prompt="\u202eevil\u202c"))
    assert rejected == []
    assert "\u200bgood\u2060" in (samples[0].response_a, samples[0].response_b)
    assert samples[0].prompt == "\u202eevil\u202c"


def test_every_format_character_is_invisible() -> None:
    import sys
    import unicodedata

    from labeling.ingest import is_invisible
    from labeling.ingest.validation import _ZERO_WIDTH

    formats = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    assert all(map(is_invisible, formats))
    # Everything treated as zero-width when comparing two replies is also invisible on its own.
    zero_width = [chr(c) for c in range(sys.maxunicode + 1) if _ZERO_WIDTH.fullmatch(chr(c))]
    assert len(zero_width) > 200 and all(map(is_invisible, zero_width))
    assert not any(map(is_invisible, "aZ9.\u05e9\u4e2d\U0001f600"))


def test_metadata_that_cannot_be_stored_is_quarantined_not_crashing_the_store() -> None:
    _, rejected = parse(
        base(sample_id="surr", metadata={"k": "\udc80"}),
        base(sample_id="deep", metadata={"d": deep(120)}),
        base(sample_id="col", **{"\ud800x": 1}),
    )
    assert [(q.sample_id, q.field) for q in rejected] == [
        ("surr", "metadata"),
        ("deep", "metadata"),
        ("col", "(column names)"),
    ]


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = {"x": value}
    return value
