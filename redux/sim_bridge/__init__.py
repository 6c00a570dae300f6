"""Simulators behind one ``Session`` interface, chosen by ``sim.kind``."""

from redux.config import SimConfig
from redux.sim_bridge.session import Observation, Plan, Session, StepResult


def make_session(cfg: SimConfig) -> Session:
    if cfg.kind == "lane":
        from redux.sim_bridge.lane.session import LaneSession

        return LaneSession(cfg)
    if cfg.kind == "minisim":
        from redux.sim_bridge.minisim.observation_renderer import ObservationRenderer
        from redux.sim_bridge.minisim.session import MinisimSession

        return MinisimSession(cfg, ObservationRenderer(cfg) if cfg.cameras else None)
    raise ValueError(f"unknown simulator kind {cfg.kind!r}")


__all__ = ["Observation", "Plan", "Session", "StepResult", "make_session"]
