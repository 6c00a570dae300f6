"""Expert demonstrations recorded in one process, in the order they were made.

What the main job's ``expert`` generator would feed the learner, without Ray or Redis:
for the offline probes (tools/probes) and for measuring the plans' statistics
(``redux policy plan-units``).
"""

from __future__ import annotations

from typing import Callable

from redux.buffer.codec import RolloutRecord
from redux.config import RunConfig


def record_demonstrations(
    cfg: RunConfig, sessions: int, calls: int, on_call: Callable[[int, int], None] | None = None
) -> list[RolloutRecord]:
    """``calls`` generator calls of ``actors.rollout_steps`` decisions on each of ``sessions`` sessions.

    ``on_call(done, records)`` is told after each call (a progress bar)."""
    from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator

    cfg = cfg.model_copy(deep=True)
    cfg.sim.sessions_per_actor, cfg.actors.num = sessions, 1
    # the replica only shapes the model inputs here (the expert drives), so measuring the
    # minisim plan units must not need them (nor a file of them)
    cfg.policy.plan_units = "published"
    generator = BehaviourCloningGenerator(cfg, 0)
    records: list[RolloutRecord] = []
    for call in range(calls):
        records += generator.generate(cfg.actors.rollout_steps)[0]
        if on_call is not None:
            on_call(call + 1, len(records))
    return records
