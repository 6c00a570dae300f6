"""Gathering the records of one optimiser step from the rollout buffer."""

from __future__ import annotations

import time

from redux.buffer.rollout_buffer import RolloutBuffer, Taken


class LearnerStarved(RuntimeError):
    """No usable record arrived for ``learner.take_timeout_s``: the actors are gone or stuck.

    An infrastructure failure (retry with live actors), not a data one. Records taken
    before it was raised stay un-acked, so the buffer hands them out again.
    """


def gather_rollouts(buffer: RolloutBuffer, n: int, version: int, timeout_s: float) -> list[Taken]:
    """Exactly ``n`` fresh records for a learner at weight ``version``.

    The buffer drops stale and undecodable records itself, so a take may return fewer
    than asked or none; the timeout restarts whenever something usable arrives.
    """
    taken: list[Taken] = []
    deadline = time.monotonic() + timeout_s
    while len(taken) < n:
        arrived = buffer.take(n - len(taken), current_version=version)
        if arrived:
            taken += arrived
            deadline = time.monotonic() + timeout_s
        elif time.monotonic() >= deadline:
            raise LearnerStarved(
                f"no fresh record arrived in {buffer.stream} for {timeout_s:g} s "
                f"(have {len(taken)} of the {n} records step needs at weight version {version})"
            )
    return taken


def staleness(taken: list[Taken], version: int) -> list[int]:
    """Weight versions each record lags the learner by; 0 means acted with the current weights."""
    return [version - t.record.weight_version for t in taken]
