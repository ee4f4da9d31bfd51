"""Regenerate the bad-input corpus in tests/data/bad_inputs/ (one small file per kind of bad input).

    .venv/bin/python tests/data/make_bad_inputs.py

Text fixtures are written byte for byte here (invalid UTF-8, BOMs and CRLFs are hard to keep
intact in an editor); parquet files and the empty datasets directory need pyarrow / datasets.
tests/labeling/test_bad_inputs.py lists what each file must do.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

OUT = Path(__file__).resolve().parent / "bad_inputs"


def row(sample_id: str, **fields: object) -> dict:
    base = {
        "sample_id": sample_id,
        "prompt": "Which reply is kinder?",
        "response_a": "Thanks!",
        "response_b": "Whatever.",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def nested(leaf: object, depth: int) -> object:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def line(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=True).encode("utf-8") + b"\n"


def hh(sample_id: str, chosen: str, rejected: str) -> bytes:
    return line({"sample_id": sample_id, "chosen": chosen, "rejected": rejected})


JSONL: dict[str, bytes] = {
    "truncated_json.jsonl": b'{"sample_id": "bad-trunc", "prompt": "hi", "response_a": "x", "resp\n',
    "not_an_object.jsonl": b"[1, 2, 3]\n",
    "wrong_type_response.jsonl": line(row("bad-type", response_a=42)),
    "bool_response.jsonl": line(row("bad-bool", response_b=True)),
    "numeric_prompt.jsonl": line(row("bad-numprompt", prompt=123)),
    "missing_prompt.jsonl": line(row("bad-noprompt", prompt=...)),
    "missing_response.jsonl": line(row("bad-noresp", response_b=...)),
    "null_response.jsonl": line(row("bad-null", response_b=None)),
    "empty_response.jsonl": line(row("bad-empty", response_a="")),
    "whitespace_response.jsonl": line(row("bad-ws", response_a=" \n\t ")),
    "identical_responses.jsonl": line(row("bad-same", response_a="Same.", response_b="Same.")),
    "nul_byte.jsonl": line(row("bad-nul", prompt="hello\u0000world")),
    # Raw 0xff / 0xfe bytes: not UTF-8 at all.
    "invalid_utf8.jsonl": b'{"sample_id": "bad-utf8", "prompt": "caf\xff\xfe", "response_a": "a", "response_b": "b"}\n',
    # A surrogate written as a JSON escape: valid JSON, but not a Unicode character.
    "lone_surrogate_escape.jsonl": b'{"sample_id": "bad-surr", "prompt": "x\\ud800y", '
    b'"response_a": "a", "response_b": "b"}\n',
    # The same surrogate as raw CESU-8 bytes, which strict UTF-8 decoding rejects.
    "lone_surrogate_bytes.jsonl": b'{"sample_id": "bad-surrb", "prompt": "x\xed\xa0\x80y", '
    b'"response_a": "a", "response_b": "b"}\n',
    "whitespace_id.jsonl": line(row("   ")),
    "bad_label.jsonl": line(row("bad-label", preferred="C")),
    "contradicting_labels.jsonl": line(row("bad-labels", preferred="A", reference_label="B")),
    "metadata_not_object.jsonl": line(row("bad-meta", metadata="from the forum")),
    "metadata_nan.jsonl": b'{"sample_id": "bad-nan", "prompt": "p", "response_a": "a", "response_b": "b", '
    b'"metadata": {"score": NaN}}\n',
    "chat_unknown_role.jsonl": line(
        row("bad-role", prompt=[{"role": "user", "content": "hi"}, {"role": "tool", "content": "x"}])
    ),
    "chat_empty_list.jsonl": line(row("bad-chat-empty", prompt=[])),
    "chat_message_not_object.jsonl": line(row("bad-chat-str", prompt=["hi there"])),
    "chat_content_not_text.jsonl": line(row("bad-chat-content", prompt=[{"role": "user", "content": 5}])),
    "duplicate_id_different_content.jsonl": line(row("dup-1")) + line(row("dup-1", response_b="Go away.")),
    # Same id as a valid row (tests/data/valid_generic.jsonl) with other content: a store-level conflict.
    "conflicting_reingest.jsonl": line(row("valid-1", response_a="A different answer")),
    "hh_prefix_mismatch.jsonl": hh(
        "bad-hh-prefix", "\n\nHuman: Hi\n\nAssistant: Hello!", "\n\nHuman: Hey\n\nAssistant: Go away."
    ),
    "hh_no_assistant_turn.jsonl": hh("bad-hh-turn", "\n\nHuman: Hi", "\n\nHuman: Hi\n\nAssistant: Go away."),
    "hh_empty_reply.jsonl": hh(
        "bad-hh-reply", "\n\nHuman: Hi\n\nAssistant:   ", "\n\nHuman: Hi\n\nAssistant: Go away."
    ),
    "hh_missing_rejected.jsonl": line({"sample_id": "bad-hh-missing", "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!"}),
    "empty_file.jsonl": b"",
    # The JSON decoder itself fails (not a decode error); the valid row after it must still land.
    "huge_integer.jsonl": b'{"sample_id": "bad-bigint", "prompt": "p", "response_a": "a", "response_b": "b", '
    b'"metadata": {"n": ' + b"9" * 5_000 + b"}}\n" + line(row("ok-after-bigint")),
    # Lone surrogates where no text check looks: metadata values and extra column names cannot be stored.
    "lone_surrogate_metadata.jsonl": line(row("bad-surr-meta", metadata={"note": "\ud83d"})),
    "lone_surrogate_column.jsonl": line(row("bad-surr-col", **{"\udc80tag": "x"})),
    "metadata_too_deep.jsonl": line(row("bad-meta-deep", metadata={"tree": nested({"leaf": 1}, 150)})),
    # Text made only of characters that show nothing counts as empty.
    "invisible_response.jsonl": line(row("bad-invisible", response_a="\u200b\u200c\u200d\u2060\ufeff\u00ad")),
    "invisible_chat_content.jsonl": line(
        row("bad-invisible-chat", prompt=[{"role": "user", "content": "\u2060\u3164\u00a0\u180e"}])
    ),
    "invisible_id.jsonl": line(row("\u200b\u200b")),
    "hh_invisible_reply.jsonl": hh(
        "bad-hh-invisible", "\n\nHuman: Hi\n\nAssistant: \u200b\u2060", "\n\nHuman: Hi\n\nAssistant: Go away."
    ),
    "identical_but_zero_width.jsonl": line(row("bad-zw-same", response_a="Same.", response_b="Sa\u200bme.\ufeff")),
    # Accepted: stored literally, never interpreted.
    "rtl_zero_width.jsonl": line(
        row("ok-rtl", prompt="\u202eevil\u202c \u200bhidden\u200d \u05e9\u05dc\u05d5\u05dd", response_a="\ufeffA\u200b")
    ),
    "html.jsonl": line(
        row(
            "ok-html",
            prompt='<b>bold</b> <img src=x onerror="alert(1)">',
            response_a="<table><tr><td>x</td></tr></table>",
        )
    ),
    "script_tag.jsonl": line(
        row("ok-script", response_a="<script>fetch('/api/projects').then(r => r.json())</script>")
    ),
    "labelstudio_template.jsonl": line(
        row("ok-template", prompt="$prompt {{ response_a }} ${var}", response_a='<Text name="x" value="$response_b"/>')
    ),
    "bom.jsonl": b"\xef\xbb\xbf" + line(row("ok-bom")),
    "crlf.jsonl": line(row("ok-crlf-1"))[:-1]
    + b"\r\n"
    + line(row("ok-crlf-2", response_a="Line one\r\nline two"))[:-1]
    + b"\r\n",
    "blank_lines.jsonl": b"\n" + line(row("ok-blank")) + b"   \n\n",
}


def main() -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for name, data in JSONL.items():
        (OUT / name).write_bytes(data)
    # A gzip cut off halfway through its stream.
    full = gzip.compress(b"".join(line(row(f"ok-gz-{i}", response_a=f"Thanks {i}!" * 40)) for i in range(20)), mtime=0)
    (OUT / "truncated_gzip.jsonl.gz").write_bytes(full[: len(full) // 2])
    # Arrays nested 100,000 deep: past the decoder's recursion limit on any Python (gzip keeps it tiny).
    deep = b'{"sample_id": "bad-deep", "prompt": "p", "response_a": "a", "response_b": "b", "metadata": {"x": '
    deep += b"[" * 100_000 + b"]" * 100_000 + b"}}\n" + line(row("ok-after-deep"))
    (OUT / "deep_nesting.jsonl.gz").write_bytes(gzip.compress(deep, mtime=0))
    (OUT / "not_parquet.parquet").write_bytes(b"prompt,response_a,response_b\nhi,a,b\n")
    pq.write_table(pa.table({"question": ["hi"], "answer": ["hello"]}), OUT / "wrong_schema.parquet")
    pq.write_table(
        pa.table({"sample_id": ["bad-pq-type"], "prompt": ["hi"], "response_a": [1], "response_b": ["b"]}),
        OUT / "wrong_column_type.parquet",
    )
    empty = datasets.Dataset.from_dict(
        {"prompt": [], "response_a": [], "response_b": []},
        features=datasets.Features({c: datasets.Value("string") for c in ("prompt", "response_a", "response_b")}),
    )
    empty.save_to_disk(str(OUT / "empty_dataset"))
    print(f"wrote {len(list(OUT.iterdir()))} files to {OUT}")


if __name__ == "__main__":
    main()
