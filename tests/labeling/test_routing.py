import pytest

from labeling.routing import RoutingPolicy, is_audited, route_after_judge, route_after_labeler
from labeling.schemas import AILabel, JudgeVerdict, RouteReason as R

POLICY = RoutingPolicy(high=0.8, low=0.6, audit_rate=0.0)


def ai(p_a: float, sid: str = "s1") -> AILabel:
    return AILabel(sample_id=sid, p_a=p_a, labeler_name="t", labeler_version="v1")


def verdict(p_orig: float | None, p_swap: float | None, sid: str = "s1", error: str | None = None) -> JudgeVerdict:
    return JudgeVerdict(sample_id=sid, p_a_original=p_orig, p_a_swapped=p_swap, model="m", version="j1", parse_error=error)


@pytest.mark.parametrize(
    ("p_a", "to_judge", "to_human", "reason"),
    [
        (0.95, True, False, R.high_confidence),
        (0.05, True, False, R.high_confidence),  # confident for B is confident too
        (0.80, True, False, R.high_confidence),  # the boundary belongs to `high`
        (0.70, True, True, R.mid_confidence),
        (0.60, True, True, R.mid_confidence),  # `low` is exclusive below
        (0.59, False, True, R.low_confidence),
        (0.50, False, True, R.low_confidence),
    ],
)
def test_route_after_labeler_by_confidence(p_a, to_judge, to_human, reason):
    route = route_after_labeler("s1", ai(p_a), POLICY)
    assert (route.to_judge, route.to_human) == (to_judge, to_human)
    assert route.reasons == [reason]


def test_cold_start_sends_everything_to_humans():
    route = route_after_labeler("s1", None, POLICY)
    assert route.to_human and not route.to_judge
    assert route.reasons == [R.cold_start]


def test_no_qualifying_threshold_auto_accepts_nothing():
    policy = RoutingPolicy(high=None, low=0.6, audit_rate=0.0)
    assert route_after_labeler("s1", ai(0.99), policy).to_human


def test_audit_is_deterministic_and_near_its_rate():
    ids = [f"sample-{i}" for i in range(20_000)]
    drawn = [sid for sid in ids if is_audited(sid, 0.1)]
    assert drawn == [sid for sid in ids if is_audited(sid, 0.1)]
    assert 0.09 < len(drawn) / len(ids) < 0.11
    audited = drawn[0]
    route = route_after_labeler(audited, ai(0.99, audited), RoutingPolicy(high=0.8, low=0.6, audit_rate=0.1))
    assert route.to_judge and route.to_human and R.audit in route.reasons


def test_judge_agreeing_and_consistent_is_accepted():
    first = route_after_labeler("s1", ai(0.9), POLICY)
    route = route_after_judge(first, ai(0.9), verdict(0.8, 0.7), POLICY)
    assert route.accept_judge and not route.to_human
    assert route.reasons == [R.high_confidence, R.judge_agrees]


@pytest.mark.parametrize(
    ("v", "reason"),
    [
        (verdict(0.2, 0.3), R.judge_disagrees),
        (verdict(0.9, 0.3), R.swap_inconsistent),  # flips when A/B are swapped
        (verdict(None, None, error="no verdict token"), R.judge_unparseable),
    ],
)
def test_judge_problems_escalate_to_humans(v, reason):
    first = route_after_labeler("s1", ai(0.9), POLICY)
    route = route_after_judge(first, ai(0.9), v, POLICY)
    assert route.to_human and not route.accept_judge
    assert route.reasons[-1] == reason


def test_injection_flag_never_auto_accepts():
    first = route_after_labeler("s1", ai(0.9), POLICY)
    route = route_after_judge(first, ai(0.9), verdict(0.9, 0.9), POLICY, injection_flags=["fake_verdict"])
    assert route.to_human and R.possible_injection in route.reasons


def test_judge_threshold_from_calibration_escalates_weak_verdicts():
    policy = RoutingPolicy(high=0.8, low=0.6, audit_rate=0.0, judge_threshold=0.75)
    first = route_after_labeler("s1", ai(0.9), policy)
    route = route_after_judge(first, ai(0.9), verdict(0.7, 0.7), policy)
    assert route.to_human and route.reasons[-1] == R.judge_low_confidence


def test_mid_confidence_goes_to_human_even_when_judge_agrees():
    first = route_after_labeler("s1", ai(0.7), POLICY)
    route = route_after_judge(first, ai(0.7), verdict(0.9, 0.9), POLICY)
    assert route.to_human and not route.accept_judge


def test_policy_rejects_inverted_thresholds():
    with pytest.raises(ValueError, match="low"):
        RoutingPolicy(high=0.6, low=0.8, audit_rate=0.0)


# -- the policy in force ------------------------------------------------------------------------


def _active(labeler_version: str | None, high: float | None = 0.9, judge: float | None = 0.7):
    from labeling.guarantee import ActiveThresholds

    return ActiveThresholds(
        version="th1", labeler_version=labeler_version, labeler_threshold=high, judge_threshold=judge,
        alpha=0.1, delta=0.1, status="fitted",
    )  # fmt: skip


def test_policy_in_force_is_the_settings_before_any_calibration():
    from labeling.routing import policy_in_force
    from labeling.settings import RoutingSettings

    routing = RoutingSettings(high=0.85, low=0.6, audit_rate=0.02)
    assert policy_in_force(routing, None, "v1") == RoutingPolicy(high=0.85, low=0.6, audit_rate=0.02)


def test_policy_in_force_uses_a_calibration_only_for_its_own_labeler():
    from labeling.routing import policy_in_force
    from labeling.settings import RoutingSettings

    routing = RoutingSettings(high=0.85, low=0.6, audit_rate=0.02)
    calibrated = RoutingPolicy(high=0.9, low=0.6, audit_rate=0.02, judge_threshold=0.7)
    assert policy_in_force(routing, _active("v1"), "v1") == calibrated
    assert policy_in_force(routing, _active("v1"), None) == calibrated  # no labeler: the active calibration
    assert policy_in_force(routing, _active(None), "v2") == calibrated  # fitted before versions were recorded
    assert policy_in_force(routing, _active("v1"), "v2") == RoutingPolicy(high=0.85, low=0.6, audit_rate=0.02)


def test_policy_in_force_keeps_low_at_or_below_a_calibrated_high():
    from labeling.routing import policy_in_force
    from labeling.settings import RoutingSettings

    routing = RoutingSettings(high=0.85, low=0.7, audit_rate=0.0)
    assert policy_in_force(routing, _active("v1", high=0.66), "v1").low == 0.66
    off = policy_in_force(routing, _active("v1", high=None, judge=None), "v1")  # drift: nothing auto-accepted
    assert off.high is None and off.low == 0.7 and off.judge_threshold is None
