"""Reasoning consistency: a stated decision against the driven plan's first meta-actions."""

import numpy as np

from redux.eval.reasoning_consistency import decision_consistent, meta_actions_consistent
from redux.policy.action_space import normalise
from redux.policy.alpamayo.targets import plan_meta_actions
from redux.sim_bridge.minisim.vocabulary import DECISIONS, META_LANE, META_LATERAL, META_LONGITUDINAL


def meta(lon, lat="straight", lane="keep lane"):
    return (META_LONGITUDINAL.index(lon), META_LATERAL.index(lat), META_LANE.index(lane))


def plan(accel: float, curvature: float = 0.0) -> np.ndarray:
    return normalise(np.tile(np.array([[accel, curvature]], np.float32), (64, 1)))


def test_a_stop_must_slow_down_and_a_turn_must_turn():
    stop = DECISIONS.index("stop for traffic light")
    assert decision_consistent(stop, meta("decelerate"))
    assert decision_consistent(stop, meta("wait"))
    assert not decision_consistent(stop, meta("accelerate"))
    left = DECISIONS.index("turn left")
    assert decision_consistent(left, meta("keep speed", "left turn"))
    assert not decision_consistent(left, meta("keep speed", "right turn"))


def test_follow_lead_leaves_speed_free_but_excludes_lane_changes():
    follow = DECISIONS.index("follow lead")
    for lon in ("accelerate", "decelerate", "keep speed", "wait"):
        assert decision_consistent(follow, meta(lon))
    assert not decision_consistent(follow, meta("keep speed", lane="left lane change"))


def test_unparseable_reasoning_is_never_consistent():
    assert not decision_consistent(-1, meta("keep speed"))
    assert not meta_actions_consistent((-1, -1, -1), meta("keep speed"))


def test_stated_meta_actions_must_match_on_every_axis():
    assert meta_actions_consistent(meta("decelerate"), meta("decelerate"))
    assert not meta_actions_consistent(meta("decelerate"), meta("decelerate", "left turn"))


def test_with_the_plan_labeller_braking_agrees_with_a_stop_not_with_keep_speed():
    braking = plan_meta_actions(plan(-3.0), speed=10.0)[0][2:]
    assert decision_consistent(DECISIONS.index("stop for stop sign"), braking)
    assert not decision_consistent(DECISIONS.index("keep speed"), braking)
    cruising = plan_meta_actions(plan(0.0), speed=10.0)[0][2:]
    assert decision_consistent(DECISIONS.index("keep speed"), cruising)
