"""models.training.gate.gate_candidate: decide, mark and promote, without Prefect or models."""

from __future__ import annotations

from labeling.records import ActiveLabeler
from labeling.schemas import AILabel
from models.training.gate import gate_candidate


class ScriptedLabeler:
    """Answers A for every sample whose id is in ``right_on_a`` (else B); records unload()."""

    def __init__(self, version: str, prefers_a: set[str]) -> None:
        self.version, self.prefers_a, self.unloaded = version, prefers_a, False

    def label(self, samples):
        return [AILabel(sample_id=s.sample_id, p_a=0.9 if s.sample_id in self.prefers_a else 0.1,
                        labeler_name="scripted", labeler_version=self.version) for s in samples]

    def unload(self) -> None:
        self.unloaded = True


def _rows(n: int) -> dict[str, list[str]]:
    ids = [f"s{i}" for i in range(n)]
    return {"prompt": [f"p{i}" for i in range(n)], "chosen": [f"good {i}" for i in range(n)],
            "rejected": [f"bad {i}" for i in range(n)], "sample_id": ids}


def _perfect(version: str, rows) -> ScriptedLabeler:
    from models.training.gate import heldout_samples

    samples, answers = heldout_samples(rows)
    return ScriptedLabeler(version, {s.sample_id for s, a in zip(samples, answers, strict=True) if a == "A"})


def test_a_better_candidate_is_marked_promoted_and_becomes_the_active_labeler() -> None:
    rows, marks, promoted = _rows(40), [], []
    candidate, baseline = _perfect("rm-2", rows), ScriptedLabeler("rm-1", set())
    decision = gate_candidate(candidate, baseline, rows, 0.02, mark=lambda *a: marks.append(a),
                              promote=promoted.append, model_path="/reg/rm-2", version="rm-2")
    assert decision.passed and decision.candidate_accuracy == 1.0 and decision.baseline_version == "rm-1"
    assert [m[0] for m in marks] == ["promoted"] and marks[0][2]["gate"]["passed"] is True
    [active] = promoted
    assert isinstance(active, ActiveLabeler) and active.version == "rm-2" and active.model_path == "/reg/rm-2"
    assert active.replaced == "rm-1" and candidate.unloaded and baseline.unloaded


def test_a_candidate_within_the_margin_is_rejected_and_nothing_is_promoted() -> None:
    rows, marks, promoted = _rows(40), [], []
    decision = gate_candidate(_perfect("rm-2", rows), _perfect("rm-1", rows), rows, 0.02,
                              mark=lambda *a: marks.append(a), promote=promoted.append, model_path="/x", version="rm-2")
    assert not decision.passed and [m[0] for m in marks] == ["rejected"] and promoted == []
    assert "does not beat" in marks[0][1]
