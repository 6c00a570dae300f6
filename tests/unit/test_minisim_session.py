"""Closed-loop minisim: sessions, batches, reference policies and their scores."""

from __future__ import annotations

import numpy as np
import pytest

from redux.actors.generators.evaluation import Evaluator
from redux.config import RunConfig
from redux.eval.aggregation import rollout_scores
from redux.eval.summary import summarize
from redux.policy.reference import ConstantVelocity
from redux.sim_bridge import make_session
from redux.sim_bridge.minisim.session import MinisimBatch
from redux.sim_bridge.minisim.suites import suite_scene_ids
from redux.sim_bridge.session import Plan


def minisim_config(**sim) -> RunConfig:
    cfg = RunConfig()
    cfg.sim.kind = "minisim"
    cfg.sim.suite = "minisim-test"
    cfg.sim.episode_steps = 60
    cfg.sim.expert_labels = False
    cfg.sim.sessions_per_actor = 4
    for key, value in sim.items():
        setattr(cfg.sim, key, value)
    return cfg


def drive(session, scene_id: int, steps: int, policy=ConstantVelocity()):
    obs = session.reset(scene_id, seed=0)
    history = []
    for _ in range(steps):
        out = policy.act([obs])
        result = session.step(Plan(out.actions[0, 0], out.poses[0, 0]))
        history.append(result.observation.ego_history[-2].copy())
        obs = result.observation
    return np.array(history)


def test_same_scene_same_rollout():
    cfg = minisim_config()
    a = drive(make_session(cfg.sim), 3, 30)
    b = drive(make_session(cfg.sim), 3, 30)
    np.testing.assert_array_equal(a, b)


def test_a_batch_steps_like_single_sessions():
    cfg = minisim_config()
    ids = suite_scene_ids("minisim-test", 3)
    batch = MinisimBatch(cfg.sim, 3)
    obs = [batch.reset(i, scene_id, 0) for i, scene_id in enumerate(ids)]
    policy = ConstantVelocity()
    for _ in range(20):
        out = policy.act(obs)
        results = batch.step([Plan(out.actions[i, 0], out.poses[i, 0]) for i in range(3)])
        obs = [r.observation for r in results]
    for i, scene_id in enumerate(ids):
        single = make_session(cfg.sim)
        state = drive(single, scene_id, 20)
        np.testing.assert_allclose(batch.log(i).ego[-1], single.batch.log(0).ego[-1], atol=1e-9)
        assert len(state) == 20


def test_observation_has_alpasim_structure():
    cfg = minisim_config(cameras=["camera_front_wide_120fov", "camera_front_tele_30fov", "bev"])
    session = make_session(cfg.sim)
    obs = session.reset(0, 0)
    assert obs.cameras["camera_front_wide_120fov"].shape == (4, 3, cfg.sim.camera_height, cfg.sim.camera_width)
    assert obs.cameras["camera_front_wide_120fov"].dtype == np.uint8
    assert obs.cameras["bev"].shape[0] == 4 and obs.cameras["bev"].shape[2:] == (cfg.sim.bev_pixels, cfg.sim.bev_pixels)
    assert obs.ego_history.shape == (16, 3)
    np.testing.assert_allclose(obs.ego_history[-1], 0.0, atol=1e-6)  # t0 is the rig origin
    assert obs.route.shape == (20, 3)
    spacing = np.linalg.norm(np.diff(obs.route[:5, :2], axis=0), axis=1)
    np.testing.assert_allclose(spacing, 4.2, atol=0.05)
    assert obs.labels["recorded_future"].shape == (64, 3)
    assert obs.time_us == cfg.sim.warmup_steps * 100_000
    with pytest.raises(ValueError, match="unknown camera"):
        make_session(minisim_config(cameras=["camera_rear"]).sim)


def test_expert_labels_when_asked():
    cfg = minisim_config(expert_labels=True)
    obs = make_session(cfg.sim).reset(1, 0)
    assert obs.labels["expert_actions"].shape == (64, 2)
    assert obs.labels["meta_actions"].shape == (3,)
    assert obs.labels["factors"].ndim == 1


def test_egomotion_noise_perturbs_the_history_but_not_t0():
    clean = make_session(minisim_config().sim).reset(2, 0)
    noisy = make_session(minisim_config(egomotion_noise_m=0.3).sim).reset(2, 0)
    assert np.abs(noisy.ego_history[:-1, :2] - clean.ego_history[:-1, :2]).max() > 0.05
    np.testing.assert_allclose(noisy.ego_history[-1], clean.ego_history[-1])


@pytest.fixture(scope="module")
def reference_scores():
    cfg = minisim_config(episode_steps=100)
    ids = suite_scene_ids("minisim-test", 16)
    return {name: Evaluator(cfg, name).run(ids) for name in ("expert", "constant-velocity", "lane-keeper")}


def test_the_expert_drives_perfectly(reference_scores):
    summary = summarize([r.metrics for r in reference_scores["expert"]])
    assert summary["driving_score"] >= 0.99
    assert summary["collision_rate"] == 0 and summary["offroad_rate"] == 0
    for rollout in reference_scores["expert"]:  # it retraces the recorded drive
        assert np.nanmax(rollout.metrics.values["dist_to_gt_trajectory"]) < 0.3
        assert rollout.open_loop_min_ade < 1e-3


def test_constant_velocity_leaves_curved_roads(reference_scores):
    curves = [r for r in reference_scores["constant-velocity"] if r.scenario == "curve"]
    assert curves, "the first scenes of minisim-test include a curve"
    for rollout in curves:
        scores = rollout_scores(rollout.metrics)
        assert scores["offroad"] == 1 or scores["dist_to_gt_trajectory"] >= 4.0


def test_lane_keeper_follows_the_road_better_than_constant_velocity(reference_scores):
    keeper = summarize([r.metrics for r in reference_scores["lane-keeper"]])
    constant = summarize([r.metrics for r in reference_scores["constant-velocity"]])
    assert keeper["offroad_rate"] <= constant["offroad_rate"]
    assert keeper["driving_score"] < 1.0  # it ignores other road users


def scene_with_a_follower(lag_steps: int = 12):
    """Scene 0 (a straight road) plus a vehicle recorded 1.2 s behind the expert, in its lane."""
    import dataclasses

    from redux.sim_bridge.minisim.scene import EGO_REAR_AXLE_TO_CENTRE_M, ActorKind, ActorTracks
    from redux.sim_bridge.minisim.suites import generate_scene

    scene = generate_scene("minisim-test", 0, episode_steps=60)
    ego = scene.ego
    centre = ego[:, :2] + EGO_REAR_AXLE_TO_CENTRE_M * np.stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])], axis=1)
    follower = np.concatenate([centre, ego[:, 2:4]], axis=1)
    follower = np.concatenate([np.repeat(follower[:1], lag_steps, axis=0), follower[:-lag_steps]])
    follower[:lag_steps, :2] -= (lag_steps - np.arange(lag_steps))[:, None] * (centre[1] - centre[0])  # already driving
    actors = ActorTracks(
        kind=np.array([ActorKind.VEHICLE]), size=np.array([[4.6, 1.9]]),
        states=follower[None], valid=np.ones((1, len(ego)), dtype=bool),
    )
    return dataclasses.replace(scene, actors=actors)


def stop_and_score(cfg: RunConfig, scene):
    """The ego brakes to a standstill at the hand-over; per-step metrics of the rollout."""
    from redux.sim_bridge.minisim.scoring import score_rollout

    batch = MinisimBatch(cfg.sim, 1)
    batch.reset_to(0, scene, seed=0)
    stop = np.zeros((64, 3), dtype=np.float32)  # every pose at the current position: stand still
    results = [batch.step([Plan(np.zeros((64, 2), np.float32), stop)])[0] for _ in range(40)]
    log = batch.log(0)
    metrics = score_rollout(
        scene, cfg.sim.warmup_steps, np.stack(log.ego), log.plans, log.plan_steps, actor_states=np.stack(log.actors)
    )
    return metrics, results


def test_a_stopped_ego_hit_from_behind_is_rear_and_not_at_fault():
    """Log replay: the follower drives on into an ego that stops."""
    cfg = minisim_config(episode_steps=60, end_episode_on_incident=False)
    metrics, results = stop_and_score(cfg, scene_with_a_follower())
    # log replay drives the follower on through the ego; the rollout is scored up to the first contact
    scores = rollout_scores(metrics)
    assert scores["collision_rear"] == 1 and scores["collision_any"] == 1
    assert scores["collision_at_fault"] == 0
    first_hit = next(r for r in results if r.metrics["collision_any"])
    assert first_hit.metrics["collision_at_fault"] == 0


def test_reactive_traffic_brakes_for_a_stopped_ego():
    cfg = minisim_config(episode_steps=60, reactive_actors=True, end_episode_on_incident=False)
    metrics, _ = stop_and_score(cfg, scene_with_a_follower())
    assert metrics.values["collision_any"].max() == 0
    assert np.nanmin(metrics.values["min_distance_to_obstacle_m"][cfg.sim.warmup_steps :]) > 0.5


def test_reactive_traffic_mostly_replays_the_log_when_the_ego_drives_as_recorded(reference_scores):
    """Vehicles keep their recorded schedule unless the ego is in their way; IDM keeps a
    larger margin than some recorded crossings did, so a few of them yield a little more."""
    cfg = minisim_config(episode_steps=100, reactive_actors=True)
    ids = suite_scene_ids("minisim-test", 16)
    reactive = Evaluator(cfg, "expert").run(ids)
    assert summarize([r.metrics for r in reactive])["collision_rate"] == 0
    unchanged = [
        np.allclose(a.metrics.values["min_distance_to_obstacle_m"], b.metrics.values["min_distance_to_obstacle_m"], atol=0.5)
        for a, b in zip(reactive, reference_scores["expert"])
    ]
    print(f"{sum(unchanged)} of {len(unchanged)} scenes unchanged")
    assert sum(unchanged) >= 0.75 * len(unchanged)
