"""Reasoning consistency: does what the policy says agree with what it plans?

The decision a reasoning names (parsed from Chain-of-Causation text, or decoded from
LCDrive latents by the probe) is checked against the meta-actions of the plan it then
drove, labelled by the same kinematic detectors as the training data. A decision
constrains the first meta-action segment on some axes and leaves the others free: a
stop must slow down or wait, a left turn must turn left, "follow lead" says nothing
about speed but excludes a lane change. CF-VLA states meta-actions itself, so its
(final, possibly revised) meta-actions are compared with the plan's axis by axis.
"""

from __future__ import annotations

from typing import Sequence

from redux.sim_bridge.minisim.vocabulary import DECISIONS, META_LANE, META_LATERAL, META_LONGITUDINAL

_LON, _LAT, _LANE = ({name: i for i, name in enumerate(axis)} for axis in (META_LONGITUDINAL, META_LATERAL, META_LANE))
_ANY = None


def _allowed(lon=_ANY, lat=_ANY, lane=_ANY):
    def ids(names, table):
        return None if names is None else frozenset(table[n] for n in names)

    return ids(lon, _LON), ids(lat, _LAT), ids(lane, _LANE)


# decision -> the first plan segment's allowed (longitudinal, lateral, lane) values; None = unconstrained
DECISION_META: dict[str, tuple[frozenset | None, frozenset | None, frozenset | None]] = {
    "keep speed": _allowed(["keep speed"], ["straight"], ["keep lane"]),
    "accelerate": _allowed(["accelerate"], _ANY, ["keep lane"]),
    "decelerate": _allowed(["decelerate", "wait"], _ANY, ["keep lane"]),
    "follow lead": _allowed(["accelerate", "decelerate", "keep speed", "wait"], _ANY, ["keep lane"]),
    "stop for traffic light": _allowed(["decelerate", "wait"]),
    "stop for stop sign": _allowed(["decelerate", "wait"]),
    "yield to agent": _allowed(["decelerate", "wait"]),
    "keep lane": _allowed(lane=["keep lane"]),
    "nudge left": _allowed(lane=["keep lane"]),
    "nudge right": _allowed(lane=["keep lane"]),
    "lane change left": _allowed(lane=["left lane change"]),
    "lane change right": _allowed(lane=["right lane change"]),
    "turn left": _allowed(lat=["left turn"]),
    "turn right": _allowed(lat=["right turn"]),
}
assert set(DECISION_META) == set(DECISIONS)


def decision_consistent(decision: int, plan_meta: Sequence[int]) -> bool:
    """Whether decision index ``decision`` agrees with the plan's first (lon, lat, lane) meta-actions."""
    if decision < 0:
        return False  # unparseable reasoning explains nothing
    rules = DECISION_META[DECISIONS[decision]]
    return all(allowed is None or int(value) in allowed for allowed, value in zip(rules, plan_meta))


def meta_actions_consistent(stated: Sequence[int], plan_meta: Sequence[int]) -> bool:
    """CF-VLA: the stated first meta-actions equal the plan's on every axis (−1: none stated)."""
    return all(int(s) == int(p) for s, p in zip(stated, plan_meta)) and min(stated) >= 0
