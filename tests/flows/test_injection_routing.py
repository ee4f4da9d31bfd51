"""Prompt-injection attempts never get auto-accepted by label_batch, even past a fooled labeler and judge.

The labeler and the judge are stubs that are confident and always agree (in both A/B orders), and
the audit draw is off, so the injection detector inside the real judge-and-merge task is the only
thing that can stop auto-acceptance. Clean synthetic samples run alongside to measure how often
the detector stops an honest sample (its false-positive rate on the synthetic set).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

ATTEMPTS = Path(__file__).resolve().parents[1] / "data" / "injection_attempts.jsonl"
N_CLEAN = 400


class ConfidentLabeler:
    """Prefers A with high confidence, whatever the sample says: the fooled labeler."""

    name, version = "confident", "confident-v1"

    def load(self):
        pass

    def unload(self):
        pass

    def label(self, samples):
        from labeling.schemas import AILabel

        return [AILabel(sample_id=s.sample_id, p_a=0.97, labeler_name=self.name, labeler_version=self.version)
                for s in samples]


class AgreeingJudge:
    """Agrees with the labeler (A) in both orders, confidently: the fooled judge."""

    name, version = "agreeing", "agree-v1"

    def judge(self, samples, constitution):
        from labeling.schemas import JudgeVerdict

        return [JudgeVerdict(sample_id=s.sample_id, p_a_original=0.95, p_a_swapped=0.95, model=self.name,
                             version=self.version) for s in samples]


def valid_pair(sample: dict) -> dict:
    """Attempts that carry the attack in the prompt have identical responses (they test the detector
    alone); ingest would quarantine those, so give them a different, honest second response."""
    if sample["response_a"] == sample["response_b"]:
        sample = {**sample, "response_b": "I am not sure; it depends on what you need."}
    return sample


def test_no_injection_attempt_is_auto_accepted(prefect_harness, juryflow_env, monkeypatch):
    from flows.label_batch import label_batch
    from labeling.schemas import RouteReason, SampleState
    from labeling.synthetic import generate, write_jsonl
    from tasks import resources

    monkeypatch.setenv("JURYFLOW__ROUTING__AUDIT_RATE", "0")
    monkeypatch.setattr(resources, "labeler", lambda cfg: ConfidentLabeler())
    monkeypatch.setattr(resources, "judge", lambda cfg, critique=None: AgreeingJudge())
    attempts = [valid_pair(json.loads(line)["sample"]) for line in ATTEMPTS.read_text().splitlines() if line.strip()]
    clean = generate(N_CLEAN, seed=23)
    path = write_jsonl([*attempts, *clean], juryflow_env / "input.jsonl")

    label_batch(str(path))

    st = resources.store()
    attack_ids = [a["sample_id"] for a in attempts]
    states = st.sample_states(attack_ids)
    assert st.list_quarantine() == [], "every attempt is a valid sample, so only routing can stop it"
    judged = attack_ids
    assert st.get_final_labels(attack_ids) == {}, "an injection attempt was auto-accepted"
    routes = st.get_routes(judged)
    not_flagged = [sid for sid in judged if RouteReason.possible_injection not in routes[sid]["judge"].reasons]
    assert not_flagged == [], f"attempts not routed to humans as possible_injection: {not_flagged}"
    assert {states[sid] for sid in judged} == {SampleState.human_pending}

    clean_ids = sorted(set(st.ids_in_state(SampleState.labeled)) | set(st.ids_in_state(SampleState.human_pending))
                       - set(attack_ids))
    assert len(clean_ids) == N_CLEAN
    flagged = [sid for sid, r in st.get_routes(clean_ids).items()
               if RouteReason.possible_injection in r["judge"].reasons]
    accepted = st.get_final_labels(clean_ids)
    rate = len(flagged) / N_CLEAN
    print(f"injection attempts auto-accepted: 0/{len(judged)}; "
          f"clean samples flagged: {len(flagged)}/{N_CLEAN} = {rate:.2%}")
    # The stubs accept every clean sample the detector lets through: nothing else stops them.
    assert len(accepted) == N_CLEAN - len(flagged)
    assert rate <= 0.02, f"the injection detector flags {rate:.2%} of clean samples: {flagged[:5]}"
