"""From a scenario's setup to a Scene: simulate the actors, record the expert, label the drive.

The actors are simulated first and the expert is recorded reacting to them, so the
expert never runs into anyone it can see coming. Actors do not react to the ego,
though, so one may still drive into it (a vehicle merging onto the spot the ego
occupies, a follower that does not see the ego slow down): such actors are left
out of the log and the expert is recorded again, until the ego's box overlaps no
actor's box at any step. This is what makes every generated log collision-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.policy.action_space import HORIZON
from redux.sim_bridge.minisim.actors import ActorPlan, SimulatedActors, simulate_actors
from redux.sim_bridge.minisim.boxes import box_corners, boxes_overlap
from redux.sim_bridge.minisim.expert import ExpertContext, record_drive
from redux.sim_bridge.minisim.labels import step_labels_of
from redux.sim_bridge.minisim.road_map import RoadMap
from redux.sim_bridge.minisim.scene import EGO_LENGTH_M, EGO_REAR_AXLE_TO_CENTRE_M, EGO_WIDTH_M, Scene

WARMUP_STEPS = 17


@dataclass(frozen=True)
class ScenarioParams:
    episode_steps: int = 100
    warmup_steps: int = WARMUP_STEPS

    @property
    def num_steps(self) -> int:
        """Warm-up, the episode, and one planning horizon of recorded future after its last step."""
        return self.warmup_steps + self.episode_steps + HORIZON + 1


@dataclass(frozen=True)
class Setup:
    """What a scenario generator decides: the map, the ego's route and start, the other actors."""

    road_map: RoadMap
    route: tuple[int, ...]
    ego_s0: float  # rig origin's arc length on the route path at step 0
    ego_speed0: float
    actors: list[ActorPlan]


def ego_collisions(ego: np.ndarray, actors: SimulatedActors) -> np.ndarray:
    """Indices of actors whose box overlaps the ego's at some step."""
    tracks = actors.tracks
    if tracks.count == 0:
        return np.zeros(0, dtype=np.int64)
    centre = ego[:, :2] + EGO_REAR_AXLE_TO_CENTRE_M * np.stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])], axis=1)
    mine = box_corners(centre, ego[:, 2], EGO_LENGTH_M, EGO_WIDTH_M)
    theirs = box_corners(tracks.states[..., :2], tracks.states[..., 2], tracks.size[:, 0:1], tracks.size[:, 1:2])
    near = tracks.valid & (np.hypot(*(tracks.states[..., :2] - centre[None]).transpose(2, 0, 1)) < 8.0)
    hit = np.zeros(tracks.valid.shape, dtype=bool)
    actor, step = np.nonzero(near)
    hit[actor, step] = boxes_overlap(mine[step], theirs[actor, step])
    return np.flatnonzero(hit.any(axis=1))


def build_scene(setup: Setup, params: ScenarioParams, scene_id: int, seed: int, scenario: str, hard: bool) -> Scene:
    steps = params.num_steps
    actors = simulate_actors(setup.road_map, setup.actors, steps)
    while True:
        ctx = ExpertContext(setup.road_map, setup.route, actors.tracks, steps)
        x, y, yaw = ctx.path.pose_at(setup.ego_s0)
        drive = record_drive(ctx, (x, y, yaw, setup.ego_speed0))
        hits = ego_collisions(drive.states, actors)
        if len(hits) == 0:
            break
        actors = actors.without(hits)
    labels = step_labels_of(ctx, drive, actors.tracks, actors.roles)
    return Scene(
        scene_id=scene_id,
        seed=seed,
        scenario=scenario,
        hard=hard,
        road_map=setup.road_map,
        route_lanes=setup.route,
        ego=drive.states,
        actors=actors.tracks,
        labels=labels,
    )
