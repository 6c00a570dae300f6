"""The images a minisim session hands the policy: Alpamayo-rig cameras and the BEV raster.

Camera ids are Alpasim's, so a policy trained here asks for the cameras it will get
from a real Alpasim runtime; ``bev`` is minisim's privileged extra, which the
Alpasim-compatible presets do not use. Images are channel-first (C, H, W) uint8.
"""

from __future__ import annotations

import numpy as np

from redux.config import SimConfig
from redux.policy.action_space import DT_S
from redux.sim_bridge.minisim.bev import render_bev
from redux.sim_bridge.minisim.cameras import alpamayo_rig
from redux.sim_bridge.minisim.render_camera import render_camera
from redux.sim_bridge.minisim.route import RoutePath
from redux.sim_bridge.minisim.scene import Scene

BEV = "bev"


def actors_at(scene: Scene, step: int, states: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """World boxes (A, 5) x, y, yaw, length, width and kinds (A,) of the actors present at ``step``.

    ``states`` (A, 4): where the actors really are when they do not replay their log
    (reactive traffic); the recorded states otherwise.
    """
    actors = scene.actors
    present = actors.valid[:, step]
    where = actors.states[:, step] if states is None else states
    boxes = np.concatenate([where[present, :3], actors.size[present]], axis=1)
    return boxes, actors.kind[present]


class ObservationRenderer:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.specs = {spec.logical_id: spec for spec in alpamayo_rig(cfg.camera_width, cfg.camera_height)}
        unknown = [name for name in cfg.cameras if name != BEV and name not in self.specs]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; minisim has {sorted(self.specs)} and {BEV!r}")
        self.camera_names = tuple(cfg.cameras)
        self._routes: dict[tuple[int, int], np.ndarray] = {}

    def _route_points(self, scene: Scene) -> np.ndarray:
        key = (scene.scene_id, scene.seed)
        if key not in self._routes:
            if len(self._routes) > 64:  # sessions move on to new scenes; keep the cache small
                self._routes.clear()
            self._routes[key] = RoutePath.of(scene).points
        return self._routes[key]

    def camera(
        self, name: str, scene: Scene, ego_pose: np.ndarray, step: int, actor_states: np.ndarray | None = None
    ) -> np.ndarray:
        boxes, kinds = actors_at(scene, step, actor_states)
        t_s = step * DT_S
        if name == BEV:
            return render_bev(
                scene.road_map, ego_pose, boxes, kinds, t_s, self._route_points(scene),
                self.cfg.bev_pixels, self.cfg.bev_metres_per_pixel, self.cfg.bev_supersample,
            )
        image = render_camera(self.specs[name], scene.road_map, ego_pose, boxes, kinds, t_s)
        return np.ascontiguousarray(image.transpose(2, 0, 1))
