"""Other road users as seen along one path: who is in the corridor, where, and when.

A driver following a path cares about actors whose boxes enter its corridor (the
path, shifted by any planned lateral offset, widened by its half width plus a
margin). Every recorded actor state is projected onto the path once per path, so
that the per-step driving loop reads plain lists: an aligned actor in the corridor
is someone to follow; a crossing or oncoming one occupies a stretch of the path
for a while (a :class:`Conflict`) that the driver must clear before it arrives, or
wait for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.sim_bridge.minisim.route import RoutePath
from redux.sim_bridge.minisim.scene import ActorKind

ANTICIPATION_STEPS = 50  # aligned actors entering the corridor within 5 s (cut-in, merge, lane change) count already
ALIGNED_COS = 0.5  # within 60° of the path direction
MARGIN_M = {ActorKind.PEDESTRIAN: 0.6, ActorKind.CYCLIST: 0.4}  # lateral clearance kept to each kind
DEFAULT_MARGIN_M = 0.3
_NEAR_PATH_M = 15.0


@dataclass(frozen=True)
class PathObstacle:
    actor: int  # index into the scene's actor tracks
    kind: ActorKind
    in_path: list[bool]  # per scene step
    soon: list[bool]  # in the corridor at some step of [t, t + ANTICIPATION_STEPS]
    enters_in: list[int]  # steps until it is next in the corridor (0: now)
    aligned: list[bool]
    s_lo: list[float]  # box extent along the path
    s_hi: list[float]
    v_along: list[float]  # speed component along the path


@dataclass(frozen=True)
class Conflict:
    """A crossing or oncoming actor occupying [s_lo, s_hi] of the path during steps [t_in, t_out]."""

    obstacle: int  # index into the obstacle list
    t_in: int
    t_out: int
    s_lo: float
    s_hi: float


def path_obstacles(
    path: RoutePath,
    half_width_m: float,
    kinds: np.ndarray,
    sizes: np.ndarray,
    states: np.ndarray,
    valid: np.ndarray,
    lateral_plan: np.ndarray | None = None,
) -> tuple[list[PathObstacle], list[Conflict]]:
    """Project actor tracks (A, T, 4 box centres) onto ``path``; keep those that ever enter its corridor.

    ``lateral_plan`` (per path vertex, metres left) shifts the corridor where the
    driver plans to nudge.
    """
    count, steps = valid.shape
    lo, hi = path.xy.min(axis=0) - _NEAR_PATH_M, path.xy.max(axis=0) + _NEAR_PATH_M
    xy = states[..., :2]
    near = valid & np.all((xy >= lo) & (xy <= hi), axis=-1)
    actor, step = np.nonzero(near)
    if len(actor) == 0:
        return [], []
    s, d, beyond = path.project(xy[actor, step])
    phi = states[actor, step, 2] - np.interp(s, path.s, path.heading)
    cos, sin = np.cos(phi), np.sin(phi)
    length, width = sizes[actor, 0], sizes[actor, 1]
    extent_s = 0.5 * (np.abs(length * cos) + np.abs(width * sin))
    extent_d = 0.5 * (np.abs(length * sin) + np.abs(width * cos))
    planned = np.interp(s, path.s, lateral_plan) if lateral_plan is not None else 0.0
    margin = np.array([MARGIN_M.get(ActorKind(k), DEFAULT_MARGIN_M) for k in range(len(ActorKind))])[kinds[actor]]
    inside = ~beyond & (np.abs(d - planned) < extent_d + half_width_m + margin)

    def grid(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((count, steps), fill, dtype=np.asarray(values).dtype)
        out[actor, step] = values
        return out

    in_path = grid(inside, False)
    aligned = grid(cos > ALIGNED_COS, False)
    s_lo, s_hi = grid(s - extent_s, 0.0), grid(s + extent_s, 0.0)
    v_along = grid(states[actor, step, 3] * cos, 0.0)
    step_index = np.arange(steps)
    next_inside = np.minimum.accumulate(np.where(in_path, step_index, 2 * steps)[:, ::-1], axis=1)[:, ::-1]
    enters_in = next_inside - step_index
    soon = enters_in <= ANTICIPATION_STEPS

    obstacles: list[PathObstacle] = []
    conflicts: list[Conflict] = []
    for a in np.flatnonzero(in_path.any(axis=1)):
        index = len(obstacles)
        obstacles.append(
            PathObstacle(
                int(a), ActorKind(int(kinds[a])), in_path[a].tolist(), soon[a].tolist(), enters_in[a].tolist(),
                aligned[a].tolist(), s_lo[a].tolist(), s_hi[a].tolist(), v_along[a].tolist(),
            )
        )  # fmt: skip
        crossing = np.concatenate([[False], in_path[a] & ~aligned[a], [False]])
        edges = np.flatnonzero(np.diff(crossing.astype(np.int8)))
        for start, stop in zip(edges[::2], edges[1::2]):
            conflicts.append(
                Conflict(
                    index, int(start), int(stop - 1), float(s_lo[a, start:stop].min()), float(s_hi[a, start:stop].max())
                )
            )
    return obstacles, conflicts
