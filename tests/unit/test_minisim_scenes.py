"""minisim scenes: deterministic suites, and an expert drive that is safe and lawful in every scenario."""

import time

import numpy as np
import pytest

from redux.eval.geometry import box_corners, boxes_overlap
from redux.sim_bridge.minisim.expert import EGO_FRONT_M, expert_plan
from redux.sim_bridge.minisim.polyline import points_in_lanes
from redux.sim_bridge.minisim.road_map import LightState
from redux.sim_bridge.minisim.route import RoutePath
from redux.sim_bridge.minisim.scenarios import HARD, SCENARIOS
from redux.sim_bridge.minisim.scene import DT_S, EGO_LENGTH_M, EGO_REAR_AXLE_TO_CENTRE_M, EGO_WIDTH_M, Scene
from redux.sim_bridge.minisim.suites import SUITES, generate_scene, parse_suite, scenario_of, suite_scene_ids

SAFETY_SCENES = 150  # spread over every scenario of minisim-test


def ego_boxes(ego: np.ndarray) -> np.ndarray:
    centre = ego[:, :2] + EGO_REAR_AXLE_TO_CENTRE_M * np.stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])], axis=1)
    return np.stack([box_corners(x, y, yaw, EGO_LENGTH_M, EGO_WIDTH_M) for (x, y), yaw in zip(centre, ego[:, 2])])


def collisions(scene: Scene) -> list[tuple[int, int]]:
    """(step, actor) pairs whose boxes overlap the ego's (SAT on the exact boxes)."""
    boxes = ego_boxes(scene.ego)
    actors = scene.actors
    hits = []
    for a in range(actors.count):
        for t in np.flatnonzero(actors.valid[a]):
            x, y, yaw, _ = actors.states[a, t]
            if np.hypot(x - boxes[t, :, 0].mean(), y - boxes[t, :, 1].mean()) > 8.0:
                continue
            if boxes_overlap(boxes[t], box_corners(x, y, yaw, *actors.size[a])):
                hits.append((int(t), a))
    return hits


def off_lanes(scene: Scene) -> np.ndarray:
    """Steps at which a corner or an edge midpoint of the ego box lies outside every lane polygon."""
    boxes = ego_boxes(scene.ego)
    points = np.concatenate([boxes, 0.5 * (boxes + np.roll(boxes, -1, axis=1))], axis=1)  # (T, 8, 2)
    inside = points_in_lanes(list(scene.road_map.lanes.values()), points.reshape(-1, 2), tolerance_m=0.02)
    return np.flatnonzero(~inside.reshape(len(boxes), -1).all(axis=1))


def stop_line_crossings(scene: Scene) -> list[tuple[object, int]]:
    """(stop line, step at which the ego's front bumper first passes it) for lines on the route."""
    path = RoutePath.of(scene)
    s_rear, _, _ = path.project(scene.ego[:, :2])
    front = s_rear + EGO_FRONT_M
    crossings = []
    for line in scene.road_map.stop_lines:
        if line.lane_id not in scene.route_lanes:
            continue
        s_line = path.project(line.segment.mean(axis=0, keepdims=True))[0][0]
        passed = np.flatnonzero(front >= s_line)
        crossings.append((line, int(passed[0]) if len(passed) else None, front - s_line))
    return crossings


def law_violations(scene: Scene) -> list[str]:
    problems = []
    for line, step, gap in stop_line_crossings(scene):
        if step is None or step == 0:
            continue
        if line.light_id is not None:
            light = scene.road_map.traffic_lights[line.light_id]
            if light.state_at(step * DT_S) == LightState.RED:
                problems.append(f"crossed the stop line on red at step {step}")
        else:
            before = np.flatnonzero((gap[:step] > -3.0) & (scene.ego[:step, 3] < 0.05))
            if len(before) == 0:
                problems.append(f"crossed a stop-sign line at step {step} without stopping")
    return problems


def test_same_inputs_same_scene_and_different_ids_differ():
    a, b = generate_scene("minisim-test", 5), generate_scene("minisim-test", 5)
    np.testing.assert_array_equal(a.ego, b.ego)
    np.testing.assert_array_equal(a.actors.states, b.actors.states)
    np.testing.assert_array_equal(a.labels.decision, b.labels.decision)
    assert a.route_lanes == b.route_lanes and a.scenario == b.scenario
    other = next(i for i in range(6, 910) if scenario_of(i) == a.scenario)
    c = generate_scene("minisim-test", other)
    assert c.scenario == a.scenario and not np.array_equal(a.ego, c.ego)
    train = generate_scene("minisim-train", 5)
    assert train.seed != a.seed and not np.array_equal(train.ego, a.ego)


def test_scene_length_follows_episode_steps():
    assert generate_scene("minisim-test", 0).num_steps == 17 + 100 + 64 + 1
    assert generate_scene("minisim-test", 0, episode_steps=30).num_steps == 17 + 30 + 64 + 1


def test_suites_sizes_ids_and_hard_share():
    assert parse_suite("minisim-test:3") == ("minisim-test", 3)
    assert parse_suite("minisim-train") == ("minisim-train", 5000)
    assert len(suite_scene_ids("minisim-train", SUITES["minisim-train"].size)) == 5000
    test_ids = suite_scene_ids("minisim-test", 910)
    assert test_ids == list(range(910))
    hard_ids = [i for i in test_ids if scenario_of(i) in HARD]
    assert suite_scene_ids("minisim-hard", len(hard_ids)) == hard_ids
    assert 0.2 < len(hard_ids) / 910 < 0.3
    assert {scenario_of(i) for i in test_ids} == set(SCENARIOS)
    assert generate_scene("minisim-hard", hard_ids[0]).hard
    np.testing.assert_array_equal(
        generate_scene("minisim-hard", hard_ids[1]).ego, generate_scene("minisim-test", hard_ids[1]).ego
    )
    with pytest.raises(ValueError):
        generate_scene("minisim-hard", 0)  # not a hard scene
    with pytest.raises(ValueError):
        generate_scene("minisim-test", 910)


@pytest.fixture(scope="module")
def safety_scenes() -> list[Scene]:
    ids = np.linspace(0, 909, SAFETY_SCENES).astype(int)
    ids = sorted(set(ids.tolist()) | set(range(40)))  # the first 40 ids hold every scenario
    start = time.perf_counter()
    scenes = [generate_scene("minisim-test", int(i)) for i in ids]
    print(f"\ngenerated {len(scenes)} scenes in {1000 * (time.perf_counter() - start) / len(scenes):.1f} ms each")
    return scenes


def test_expert_never_touches_an_actor(safety_scenes):
    for scene in safety_scenes:
        assert collisions(scene) == [], (scene.scene_id, scene.scenario)


def test_expert_stays_on_lanes(safety_scenes):
    for scene in safety_scenes:
        steps = off_lanes(scene)
        assert len(steps) == 0, (scene.scene_id, scene.scenario, steps[:5])


def test_expert_obeys_lights_and_stop_signs(safety_scenes):
    for scene in safety_scenes:
        assert law_violations(scene) == [], (scene.scene_id, scene.scenario)


def test_expert_makes_progress(safety_scenes):
    for scene in safety_scenes:
        travelled = np.hypot(*np.diff(scene.ego[:, :2], axis=0).T).sum()
        assert travelled > 10.0, (scene.scene_id, scene.scenario, travelled)
        assert np.all(scene.ego[:, 3] >= -1e-9)  # braking stops the car, it never reverses it


def test_all_way_stop_scenes_stop_at_the_line(safety_scenes):
    stop_scenes = [s for s in safety_scenes if s.scenario == "all_way_stop"]
    assert stop_scenes
    for scene in stop_scenes:
        (line, step, gap), *_ = stop_line_crossings(scene)
        stopped = (gap > -3.0) & (gap < 0.0) & (scene.ego[:, 3] < 0.05)
        assert stopped.any(), scene.scene_id


def recorded_controls(ego: np.ndarray) -> np.ndarray:
    """(accel, curvature) between consecutive recorded states (the unicycle scheme inverted)."""
    accel = np.diff(ego[:, 3]) / DT_S
    v_mean = 0.5 * (ego[:-1, 3] + ego[1:, 3])
    dyaw = np.diff(ego[:, 2])
    moving = v_mean > 0.1
    return np.stack([accel, np.where(moving, dyaw / np.where(moving, v_mean * DT_S, 1.0), np.nan)], axis=1)


@pytest.mark.parametrize("scene_id", [0, 3, 4, 6, 11, 15, 23])
def test_expert_plan_reproduces_the_recorded_drive(scene_id):
    scene = generate_scene("minisim-test", scene_id)
    for step in (17, 40, 80):
        plan = expert_plan(scene, step, scene.ego[step])
        recorded = recorded_controls(scene.ego[step : step + 65])
        np.testing.assert_allclose(plan[:, 0], recorded[:, 0], atol=1e-3)
        moving = ~np.isnan(recorded[:, 1])
        np.testing.assert_allclose(plan[moving, 1], recorded[moving, 1], atol=1e-3)


def lateral_offsets(scene: Scene, step: int, state: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """Signed offset of the planned rear-axle path from the recorded drive's path."""
    x, y, yaw, v = (float(value) for value in state)
    path = scene.ego[:, :2]
    offsets = []
    for accel, curvature in plan:
        v_next = v + accel * DT_S
        v_mean = 0.5 * (v + v_next)
        yaw_next = yaw + curvature * v_mean * DT_S
        heading = 0.5 * (yaw + yaw_next)
        x, y, yaw, v = x + v_mean * DT_S * np.cos(heading), y + v_mean * DT_S * np.sin(heading), yaw_next, v_next
        i = int(np.argmin(np.hypot(path[:, 0] - x, path[:, 1] - y)))
        h = scene.ego[i, 2]
        offsets.append(-np.sin(h) * (x - path[i, 0]) + np.cos(h) * (y - path[i, 1]))
    return np.asarray(offsets)


@pytest.mark.parametrize("scene_id", [0, 1, 2])
def test_expert_plan_returns_to_the_lane_from_a_displaced_state(scene_id):
    scene = generate_scene("minisim-test", scene_id)
    step = 30
    for side in (1.0, -1.0):
        state = scene.ego[step].copy()
        state[0] -= side * np.sin(state[2])
        state[1] += side * np.cos(state[2])
        offsets = lateral_offsets(scene, step, state, expert_plan(scene, step, state))
        assert abs(offsets[0]) > 0.8
        assert abs(offsets[-1]) < 0.25, offsets[::8]


def test_expert_plan_timing():
    scene = generate_scene("minisim-test", 3)
    expert_plan(scene, 17, scene.ego[17])  # builds the per-scene context once
    calls = 200
    start = time.perf_counter()
    for k in range(calls):
        step = 17 + k % 90
        expert_plan(scene, step, scene.ego[step] + np.array([0.3, -0.2, 0.02, 0.5]))
    per_call = (time.perf_counter() - start) / calls
    print(f"\nexpert_plan: {1e3 * per_call:.3f} ms per call")
