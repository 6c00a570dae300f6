"""Alpasim's timestep_metrics give the same headline numbers as our own array path."""

import numpy as np
import pytest

from redux.eval.alpasim import summarize_alpasim, timestep_metrics_from_alpasim
from redux.eval.footprint import box_centres
from redux.eval.metrics import TimeAggregation, rollout_timestep_metrics
from redux.eval.plans import DriveCall
from redux.eval.road import RoadGeometry
from redux.eval.summary import summarize

LENGTH, WIDTH, REAR_AXLE_TO_CENTRE = 5.0, 2.0, 1.5
DT_US, STEPS, WARMUP = 100_000, 60, 17
T_US = np.arange(STEPS) * DT_US
xs = np.array([-50.0, 300.0])
ROAD = RoadGeometry(
    lane_centerlines=(np.stack([xs, [0.0, 0.0]], 1), np.stack([xs[::-1], [3.5, 3.5]], 1)),
    lane_widths=(3.5, 3.5),
    road_edges=(np.stack([xs, [-1.75, -1.75]], 1), np.stack([xs, [5.25, 5.25]], 1)),
)
# the recording: 10 m/s along the right lane for 12 s
RECORDED_T_US = np.arange(121) * DT_US
RECORDED_RIG = np.stack([RECORDED_T_US * 1e-5, np.zeros(121), np.zeros(121)], axis=1)
RECORDED_PATH = box_centres(RECORDED_RIG, REAR_AXLE_TO_CENTRE)


def synthetic_rollout(ego_rig: np.ndarray, actors: np.ndarray):
    """Per-timestep metrics of a rollout; a drive call every step after the warm-up, proposing the expert's future."""
    calls = []
    for step in range(WARMUP, STEPS):
        future = slice(step, step + 65)
        expert = RECORDED_PATH[future]
        calls.append(DriveCall(int(T_US[step]), RECORDED_T_US[future], np.stack([expert + [0.0, 0.5], expert])))
    return rollout_timestep_metrics(
        timestamps_us=T_US,
        ego_rig_poses=ego_rig,
        ego_length=LENGTH,
        ego_width=WIDTH,
        rear_axle_to_centre=REAR_AXLE_TO_CENTRE,
        actor_boxes=actors,
        actor_valid=np.ones(actors.shape[:2], dtype=bool),
        road=ROAD,
        recorded_timestamps_us=RECORDED_T_US,
        recorded_path=RECORDED_PATH,
        drive_calls=calls,
        eval_relevant=(np.arange(STEPS) >= WARMUP).astype(float),
    )


def parked(x: float, y: float, yaw: float = 0.0) -> np.ndarray:
    return np.tile([x, y, yaw, LENGTH, WIDTH], (1, STEPS, 1))


def rollouts():
    replay = RECORDED_RIG[:STEPS].copy()
    oncoming = np.stack([100.0 - 2.0 * np.arange(STEPS), np.full(STEPS, 3.5), np.full(STEPS, np.pi)], axis=1)
    oncoming = np.concatenate([oncoming, np.tile([LENGTH, WIDTH], (STEPS, 1))], axis=1)[None]
    drifting = replay.copy()
    drifting[WARMUP:, 1] = -np.linspace(0.0, 2.0, STEPS - WARMUP)  # reaches the edge (box side at y − 0.98 = −1.75)
    stopping = replay.copy()
    stopping[30:, 0] = stopping[30, 0]  # stops at x = 30 m
    follower = np.stack([np.arange(STEPS) * 0.75, np.zeros(STEPS), np.zeros(STEPS)], axis=1)  # catches up at 7.5 m/s
    follower = np.concatenate([follower, np.tile([LENGTH, WIDTH], (STEPS, 1))], axis=1)[None]
    return [
        synthetic_rollout(replay, oncoming),  # clean: passes the oncoming car in the other lane
        synthetic_rollout(replay, parked(40.0, 0.0)),  # drives into a parked car: front, at fault
        synthetic_rollout(drifting, oncoming),  # drifts over the road edge: offroad
        synthetic_rollout(stopping, follower),  # stops and is rear-ended: not at fault
    ]


def as_alpasim_records(metrics, names_alpasim_does_not_send=("collision_any", "close_encounter")):
    """What our gRPC layer hands over: one record per metric, sparse metrics only at their own timestamps."""
    records = []
    for k, (name, values) in enumerate(metrics.values.items()):
        if name in names_alpasim_does_not_send or name in ("collision_at_fault", "min_distance_to_obstacle_m"):
            continue
        present = ~np.isnan(values)
        aggregation = metrics.aggregation[name]
        records.append(
            {
                "name": name,
                "timestamps_us": metrics.timestamps_us[present].tolist(),
                "values": values[present].tolist(),
                "valid": [True] * int(present.sum()),
                # the enum may arrive as a number or as its protobuf name
                "time_aggregation": int(aggregation) if k % 2 else f"TIME_AGGREGATION_{aggregation.name}",
            }
        )
    return records


def test_the_synthetic_rollouts_have_the_incidents_they_were_built_for():
    from redux.eval.aggregation import rollout_scores

    clean, crash, drift, rear_ended = (rollout_scores(r) for r in rollouts())
    assert clean["offroad_or_collision"] == 0 and clean["min_ade@1s"] == pytest.approx(0.0, abs=1e-9)
    assert crash["collision_front"] == 1 and crash["collision_at_fault"] == 1
    assert drift["offroad"] == 1 and drift["collision_any"] == 0
    assert rear_ended["collision_rear"] == 1 and rear_ended["collision_at_fault"] == 0
    assert clean["plan_deviation"] == pytest.approx(0.0, abs=1e-9)


def test_alpasim_records_give_the_same_headline_numbers_as_the_array_path():
    ours = rollouts()
    expected = summarize(ours, open_loop_min_ade=np.array([0.8, 0.9]))
    got = summarize_alpasim([as_alpasim_records(r) for r in ours], open_loop_min_ade=np.array([0.8, 0.9]))
    assert set(got) == set(expected)
    for key, value in expected.items():
        if key.startswith("close_encounter_rate"):
            assert np.isnan(got[key])  # Alpasim defines no close encounter
        else:
            assert got[key] == pytest.approx(value, nan_ok=True), key
    assert expected["rollouts"] == 4
    assert expected["collision_rate"] == pytest.approx(25.0) and expected["offroad_rate"] == pytest.approx(25.0)


def test_a_hand_written_alpasim_rollout():
    t = [0, 100_000, 200_000, 300_000, 400_000]

    def record(name, values, how="MAX", timestamps=t, valid=None):
        return {
            "name": name,
            "timestamps_us": timestamps,
            "values": values,
            "valid": valid if valid is not None else [True] * len(values),
            "time_aggregation": how,
        }

    records = [
        record("collision_front", [0, 0, 0, 0, 0]),
        record("collision_rear", [0, 0, 0, 0, 0]),
        record("collision_lateral", [1, 0, 0, 1, 1]),  # the contact at t = 0 is in the warm-up
        record("collision_any", [1, 0, 0, 1, 1]),
        record("progress", [0.0, 0.1, 0.2, 0.3, 0.4], "LAST"),
        record("dist_traveled_m", [0.0, 1.0, 2.0, 3.0, 4.0], "LAST"),
        record("dist_to_gt_trajectory", [0.0, 0.0, 0.1, 0.2, 0.3]),
        record("eval_relevant", [0, 1, 1, 1, 1]),
        record("min_ade@1.0s(gt)", [0.5, 9.0], "MEAN", timestamps=[100_000, 200_000], valid=[True, False]),
    ]
    table = timestep_metrics_from_alpasim(records)
    assert table.aggregation["progress"] == TimeAggregation.LAST
    assert np.all(table.values["offroad"] == 0)  # absent: no map, counted as 0 as Alpasim does
    s = summarize_alpasim([records], recorded_path_lengths_m=[100.0])
    assert s["rollouts"] == 1 and s["collision_rate"] == 100.0 and s["driving_score"] == 0.0
    assert s["alpasim_score_km"] == pytest.approx(0.003)  # 3 m to the lateral contact at t = 0.3 s
    with pytest.raises(ValueError, match="eval_relevant"):
        timestep_metrics_from_alpasim([r for r in records if r["name"] != "eval_relevant"])
