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


def scene_order(cfg: SimConfig) -> list[int] | None:
    """The scene ids training sessions cycle through, in order; None: any id (lane scenes are drawn
    from their id). minisim: the suite's ids, or a pass weighted by ``sim.scenario_weights``."""
    if cfg.kind == "lane":
        return None
    from redux.sim_bridge.minisim.suites import suite_size, weighted_scene_order

    if cfg.scenario_weights:
        return weighted_scene_order(cfg.suite, cfg.scenario_weights)
    return list(range(suite_size(cfg.suite)))


def bev_shape(cfg: SimConfig) -> tuple[int, int]:
    """(frames, channels) of the ``bev`` camera this simulator hands a policy."""
    if cfg.kind == "lane":
        return cfg.bev_frames, 3
    from redux.sim_bridge.minisim.bev import BEV_CHANNELS
    from redux.sim_bridge.minisim.session import CAMERA_FRAMES

    return CAMERA_FRAMES, len(BEV_CHANNELS)


__all__ = ["SessionBatch", "bev_shape", "make_batch", "scene_order", "Observation", "Plan", "Session", "StepResult", "make_session"]
