"""Simulators behind one ``Session`` interface, chosen by ``sim.kind``."""

from redux.config import SimConfig
from redux.sim_bridge.session import Observation, Plan, Session, StepResult


def make_session(cfg: SimConfig) -> Session:
    if cfg.kind == "lane":
        from redux.sim_bridge.lane.session import LaneSession

        return LaneSession(cfg)
    raise ValueError(f"unknown simulator kind {cfg.kind!r}")


__all__ = ["Observation", "Plan", "Session", "StepResult", "make_session"]
