"""Simulators behind one ``Session`` interface, chosen by ``sim.kind``."""

from redux.config import SimConfig
from redux.sim_bridge.batch import SessionBatch, SessionList
from redux.sim_bridge.session import Observation, Plan, Session, StepResult


def make_session(cfg: SimConfig) -> Session:
    if cfg.kind == "lane":
        from redux.sim_bridge.lane.session import LaneSession

        return LaneSession(cfg)
    if cfg.kind == "minisim":
        from redux.sim_bridge.minisim.session import MinisimSession

        return MinisimSession(cfg, _minisim_renderer(cfg))
    raise ValueError(f"unknown simulator kind {cfg.kind!r}")


def _minisim_renderer(cfg: SimConfig):
    """The cameras a minisim session draws; None when the policy asks for none."""
    from redux.sim_bridge.minisim.observation_renderer import ObservationRenderer

    return ObservationRenderer(cfg) if cfg.cameras else None


def make_batch(cfg: SimConfig, size: int) -> SessionBatch:
    """``size`` sessions that step together (vectorised where the simulator can)."""
    if cfg.kind == "minisim":
        from redux.sim_bridge.minisim.session import MinisimBatch

        return MinisimBatch(cfg, size, _minisim_renderer(cfg))
    return SessionList([make_session(cfg) for _ in range(size)])


def scene_count(cfg: SimConfig) -> int | None:
    """How many distinct scenes ``reset(scene_id)`` accepts (ids 0 … n−1); None: any id."""
    if cfg.kind == "lane":
        return None
    from redux.sim_bridge.minisim.suites import suite_size

    return suite_size(cfg.suite)


def bev_shape(cfg: SimConfig) -> tuple[int, int]:
    """(frames, channels) of the ``bev`` camera this simulator hands a policy."""
    if cfg.kind == "lane":
        return cfg.bev_frames, 3
    from redux.sim_bridge.minisim.bev import BEV_CHANNELS
    from redux.sim_bridge.minisim.session import CAMERA_FRAMES

    return CAMERA_FRAMES, len(BEV_CHANNELS)


__all__ = ["SessionBatch", "bev_shape", "make_batch", "scene_count", "Observation", "Plan", "Session", "StepResult", "make_session"]
