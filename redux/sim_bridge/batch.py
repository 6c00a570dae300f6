"""Sessions that step together: what a rollout actor drives with one policy call.

A simulator that can vectorise (minisim) implements this itself; any other
``Session`` gets :class:`SessionList`, which steps its sessions one after another.
"""

from __future__ import annotations

from typing import Protocol

from redux.sim_bridge.session import Observation, Plan, Session, StepResult


class SessionBatch(Protocol):
    @property
    def size(self) -> int: ...

    def reset(self, index: int, scene_id: int, seed: int) -> Observation: ...

    def step(self, plans: list[Plan]) -> list[StepResult]: ...


class SessionList:
    def __init__(self, sessions: list[Session]):
        self.sessions = sessions

    @property
    def size(self) -> int:
        return len(self.sessions)

    def reset(self, index: int, scene_id: int, seed: int) -> Observation:
        return self.sessions[index].reset(scene_id, seed)

    def step(self, plans: list[Plan]) -> list[StepResult]:
        return [session.step(plan) for session, plan in zip(self.sessions, plans)]
