"""``juryflow human export-pending`` and ``juryflow human import``, through the real app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from juryflow.cli import app


def _seed_pending(n: int) -> list[str]:
    from labeling.ingest import load_records, parse_records
    from labeling.schemas import Route, RouteReason
    from labeling.settings import IngestSettings
    from labeling.synthetic import generate, write_jsonl
    from tasks import resources

    path = write_jsonl(generate(n, seed=11), resources.settings().data_dir / "input.jsonl")
    samples, _ = parse_records(load_records(path), IngestSettings())
    st = resources.store()
    st.add_samples(samples, source="human-cli-test")
    st.record_routes([Route(sample_id=s.sample_id, to_judge=False, to_human=True, reasons=[RouteReason.cold_start])
                      for s in samples], stage="labeler")
    return [s.sample_id for s in samples]


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args), terminal_width=200, prog_name="juryflow")
    assert result.exit_code == 0, result.output
    return result.output


def test_export_answer_import_and_reimport(juryflow_env: Path) -> None:
    ids = _seed_pending(6)
    out = juryflow_env / "pending.jsonl"
    assert "wrote 6 samples" in _invoke("human", "export-pending", "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["sample_id"] for r in rows[1:]} == set(ids) and "stored order" in rows[0]["_about"]
    for row in rows[1:4]:
        row.update(choice="B", annotator="ann1")
    rows[4].update(choice="tie", annotator="ann1")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))

    first = _invoke("human", "import", str(out))
    assert "imported 4 labels" in first and "3 decided" in first and "1 needs_more" in first
    assert "1 of 1 annotator said tie; needs another annotator" in first
    assert "skipped 2 rows with no choice yet" in first
    second = _invoke("human", "import", str(out))
    assert "unchanged: 4 labels already imported" in second and "imported" not in second.replace("already imported", "")
    assert "wrote 3 samples" in _invoke("human", "export-pending", "--out", str(out))  # the tie and the two unanswered
