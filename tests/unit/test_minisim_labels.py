"""minisim labels: meta-action detectors, the closed vocabularies, and the expert's per-step decisions."""

import re

import numpy as np
import pytest

from redux.sim_bridge.minisim.meta_actions import segment_meta_actions, step_labels
from redux.sim_bridge.minisim.scene import DT_S
from redux.sim_bridge.minisim.suites import generate_scene, scenario_of
from redux.sim_bridge.minisim.vocabulary import (
    DECISIONS,
    FACTORS,
    META_LANE,
    META_LATERAL,
    META_LONGITUDINAL,
    reasoning_sentence,
)

HORIZON_STEPS = 65  # the current pose and the 64 planned ones


def trajectory(speed: np.ndarray, curvature: np.ndarray | float = 0.0, lateral: np.ndarray | None = None) -> np.ndarray:
    """(N, 4) x, y, yaw, speed from per-step speeds and curvatures; ``lateral`` shifts it sideways (+ left)."""
    speed = np.asarray(speed, dtype=float)
    curvature = np.broadcast_to(curvature, speed.shape)
    yaw = np.concatenate([[0.0], np.cumsum(curvature[:-1] * speed[:-1] * DT_S)])
    x = np.concatenate([[0.0], np.cumsum(speed[:-1] * DT_S * np.cos(yaw[:-1]))])
    y = np.concatenate([[0.0], np.cumsum(speed[:-1] * DT_S * np.sin(yaw[:-1]))])
    if lateral is not None:
        y = y + lateral
    return np.stack([x, y, yaw, speed], axis=1)


def names(segment) -> tuple[str, str, str]:
    _, _, lon, lat, lane = segment
    return META_LONGITUDINAL[lon], META_LATERAL[lat], META_LANE[lane]


def test_vocabularies_are_the_closed_sets_of_the_spec():
    assert META_LONGITUDINAL == ("accelerate", "decelerate", "keep speed", "wait", "reverse")
    assert META_LATERAL == ("straight", "left turn", "right turn")
    assert META_LANE == ("keep lane", "left lane change", "right lane change")
    for decision in ("keep speed", "accelerate", "stop for traffic light", "stop for stop sign", "yield to agent",
                     "keep lane", "nudge left", "nudge right", "lane change left", "lane change right", "turn left",
                     "turn right"):  # fmt: skip
        assert decision in DECISIONS
    for factor in ("lead vehicle", "braking lead", "red light", "pedestrian crossing", "cut-in vehicle", "curve ahead"):
        assert factor in FACTORS
    assert len(set(DECISIONS)) == len(DECISIONS) and len(set(FACTORS)) == len(FACTORS)


def test_cruising_braking_waiting_reversing():
    cruise = segment_meta_actions(trajectory(np.full(HORIZON_STEPS, 10.0)))
    assert [names(s) for s in cruise] == [("keep speed", "straight", "keep lane")]
    assert cruise[0][:2] == (0, HORIZON_STEPS)
    braking = trajectory(np.maximum(10.0 - 2.0 * DT_S * np.arange(HORIZON_STEPS), 0.0))
    assert [names(s)[0] for s in segment_meta_actions(braking)] == ["decelerate", "wait"]
    start = trajectory(np.concatenate([np.zeros(30), 1.5 * DT_S * np.arange(1, 36)]))
    assert [names(s)[0] for s in segment_meta_actions(start)] == ["wait", "accelerate"]
    backwards = trajectory(np.full(HORIZON_STEPS, -1.0))
    assert names(segment_meta_actions(backwards)[0])[0] == "reverse"


def test_turns_are_junction_turns_not_road_bends():
    left = trajectory(np.full(HORIZON_STEPS, 5.0), 1 / 10.0)
    assert {names(s)[1] for s in segment_meta_actions(left)} == {"left turn"}
    right = trajectory(np.full(HORIZON_STEPS, 5.0), -1 / 12.0)
    assert {names(s)[1] for s in segment_meta_actions(right)} == {"right turn"}
    bend = trajectory(np.full(HORIZON_STEPS, 12.0), 1 / 60.0)
    assert {names(s)[1] for s in segment_meta_actions(bend)} == {"straight"}


def test_lane_changes_cross_a_lane_line_and_nudges_do_not():
    k = np.arange(HORIZON_STEPS)
    lateral = 3.5 * np.clip((k - 15) / 35.0, 0.0, 1.0)
    change = segment_meta_actions(trajectory(np.full(HORIZON_STEPS, 12.0), lateral=lateral), lateral)
    assert [names(s)[2] for s in change] == ["keep lane", "left lane change", "keep lane"]
    assert change[1][0] < 35 < change[1][1]
    right = segment_meta_actions(
        trajectory(np.full(HORIZON_STEPS, 12.0), lateral=-lateral)
    )  # offset from the heading line
    assert "right lane change" in [names(s)[2] for s in right]
    bump = 1.0 * np.sin(np.pi * np.clip((k - 10) / 40.0, 0.0, 1.0))
    nudge = segment_meta_actions(trajectory(np.full(HORIZON_STEPS, 12.0), lateral=bump), bump)
    assert {names(s)[2] for s in nudge} == {"keep lane"}


def test_segments_tile_the_horizon_and_absorb_blips():
    speed = np.full(HORIZON_STEPS, 10.0)
    speed[30:32] = [10.6, 9.8]  # a 0.2 s blip is no manoeuvre
    segments = segment_meta_actions(trajectory(speed))
    assert segments[0][0] == 0 and segments[-1][1] == HORIZON_STEPS
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    assert all(end - start >= 5 for start, end, *_ in segments)
    np.testing.assert_array_equal(step_labels(trajectory(speed)).shape, (HORIZON_STEPS, 3))


def test_sentences_name_one_decision_and_only_the_given_factors():
    assert (
        reasoning_sentence("follow lead", ["lead vehicle", "braking lead"])
        == "Follow the lead vehicle, which is braking."
    )
    openings = {d: reasoning_sentence(d).rstrip(".") for d in DECISIONS}
    assert len(set(openings.values())) == len(DECISIONS)

    def named(sentence: str) -> set[str]:
        return {
            d for d, opening in openings.items() if re.search(rf"\b{re.escape(opening)}\b", sentence, re.IGNORECASE)
        }

    for decision in DECISIONS:
        for factor in FACTORS:
            sentence = reasoning_sentence(decision, [factor])
            assert sentence == reasoning_sentence(DECISIONS.index(decision), [FACTORS.index(factor)])
            assert sentence.startswith(openings[decision]) and sentence.endswith(".")
            assert named(sentence) == {decision}, sentence
    assert reasoning_sentence("keep speed") == "Keep the current speed."


def first_scene(predicate, scenario: str, limit: int = 400):
    for scene_id in range(limit):
        if scenario_of(scene_id) == scenario:
            scene = generate_scene("minisim-test", scene_id)
            if predicate(scene):
                return scene
    pytest.fail(f"no {scenario} scene matched in the first {limit} ids")


def test_stopping_at_a_red_light_is_labelled_with_the_red_light():
    stop = DECISIONS.index("stop for traffic light")
    red = FACTORS.index("red light")
    scene = first_scene(lambda s: np.any((s.labels.decision == stop) & (s.ego[:, 3] < 0.1)), "intersection_straight")
    steps = np.flatnonzero(scene.labels.decision == stop)
    assert scene.labels.factors[steps, red].any()
    waiting = steps[scene.ego[steps, 3] < 0.1]
    assert scene.labels.factors[waiting, red].all()
    assert (scene.labels.meta_actions[waiting, 0] == META_LONGITUDINAL.index("wait")).all()


def test_lane_change_scenes_carry_lane_change_meta_actions_and_decisions():
    for scene_id in [i for i in range(200) if scenario_of(i) == "lane_change"][:6]:
        scene = generate_scene("minisim-test", scene_id)
        lanes = scene.labels.meta_actions[:, 2]
        decisions = {DECISIONS[d] for d in scene.labels.decision}
        first = scene.road_map.lanes[scene.route_lanes[0]]
        to_left = first.left is not None and scene.route_lanes[1] in scene.road_map.lanes[first.left].successors
        side = "left" if to_left else "right"
        assert (lanes == META_LANE.index(f"{side} lane change")).any(), scene_id
        assert f"lane change {side}" in decisions, scene_id


def test_turns_and_stop_signs_are_labelled():
    turned = first_scene(lambda s: np.unwrap(s.ego[:, 2])[-1] - s.ego[0, 2] > np.radians(80.0), "intersection_left")
    assert DECISIONS.index("turn left") in turned.labels.decision
    assert (turned.labels.meta_actions[:, 1] == META_LATERAL.index("left turn")).any()
    stop_sign = first_scene(lambda s: True, "all_way_stop")
    steps = np.flatnonzero(stop_sign.labels.decision == DECISIONS.index("stop for stop sign"))
    assert len(steps) and stop_sign.labels.factors[steps, FACTORS.index("stop sign")].all()


def test_labels_have_the_scene_length():
    scene = generate_scene("minisim-test", 1)
    steps = scene.num_steps
    assert scene.labels.decision.shape == (steps,) and scene.labels.meta_actions.shape == (steps, 3)
    assert scene.labels.factors.shape == (steps, len(FACTORS)) and scene.labels.factors.dtype == bool
    for decision, factors in zip(scene.labels.decision, scene.labels.factors):
        reasoning_sentence(int(decision), list(np.flatnonzero(factors)))
