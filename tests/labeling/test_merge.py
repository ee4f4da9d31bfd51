from labeling.merge import judge_final_label, resolve_human_labels
from labeling.schemas import AILabel, HumanLabel, JudgeVerdict, LabelSource

AI = AILabel(sample_id="s", p_a=0.9, labeler_name="t", labeler_version="lv")
JUDGE_A = JudgeVerdict(sample_id="s", p_a_original=0.9, p_a_swapped=0.8, model="m", version="jv")


def hl(annotator: str, choice: str, aid: str | None = None, cancelled: bool = False) -> HumanLabel:
    return HumanLabel(
        sample_id="s", annotation_id=aid or f"{annotator}-{choice}", annotator=annotator, choice=choice, cancelled=cancelled
    )


def resolve(labels, verdict=JUDGE_A, max_annotators=3):
    return resolve_human_labels("s", labels, ai_label=AI, verdict=verdict, max_annotators=max_annotators)


def test_judge_final_label_records_provenance():
    final = judge_final_label(AI, JUDGE_A)
    assert (final.preferred, final.source, final.labeler_version, final.judge_version) == ("A", "judge", "lv", "jv")
    assert abs(final.confidence - 0.85) < 1e-9


def test_single_human_agreeing_with_judge_is_human():
    r = resolve([hl("u1", "A")])
    assert r.outcome == "decided" and r.final.preferred == "A" and r.final.source == LabelSource.human


def test_human_overriding_judge_is_recorded():
    r = resolve([hl("u1", "B")])
    assert r.final.preferred == "B" and r.final.source == LabelSource.human_over_judge


def test_majority_of_three():
    r = resolve([hl("u1", "B"), hl("u2", "A"), hl("u3", "B")])
    assert r.final.preferred == "B" and r.n_annotators == 3 and abs(r.final.confidence - 2 / 3) < 1e-9


def test_split_vote_asks_for_more_until_limit_then_is_a_tie():
    assert resolve([hl("u1", "A"), hl("u2", "B")]).outcome == "needs_more"
    r = resolve([hl("u1", "A"), hl("u2", "B")], max_annotators=2)
    assert r.outcome == "tie" and r.final.preferred == "tie"


def test_cancelled_annotations_do_not_vote_and_updates_replace():
    assert resolve([hl("u1", "A", cancelled=True)]).outcome == "no_votes"
    # The same annotator changed their mind: only the latest counts.
    r = resolve([hl("u1", "A", aid="1"), hl("u1", "B", aid="1")])
    assert r.final.preferred == "B" and r.n_annotators == 1


def test_waits_for_the_wanted_number_of_annotators():
    labels = [hl("u1", "A"), hl("u2", "B", cancelled=True)]  # a skip does not count as an answer
    r = resolve_human_labels("s", labels, ai_label=AI, verdict=JUDGE_A, max_annotators=3, wanted=2)
    assert r.outcome == "waiting" and r.final is None
    r = resolve_human_labels("s", [hl("u1", "B"), hl("u2", "B")], ai_label=AI, verdict=JUDGE_A, max_annotators=3, wanted=2)
    assert (r.final.preferred, r.final.source, r.final.judge_version, r.n_annotators) == ("B", "human_over_judge", "jv", 2)


def test_three_way_split_at_the_limit_is_a_final_tie_with_votes():
    r = resolve([hl("u1", "A"), hl("u2", "B"), hl("u3", "tie")])
    assert r.outcome == "tie" and r.votes == {"A": 1, "B": 1, "tie": 1}
