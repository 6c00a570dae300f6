"""The closed sets the reasoning speaks in: driving decisions, causal factors, meta-actions.

Indices are stable (append only): StepLabels store them, checkpoints learn them.

One decision per step. A Chain-of-Causation trace names ONE decision, so the
expert's longitudinal and lateral decisions are folded into a *primary* one:

1. a stop or yield (stop for traffic light, stop for stop sign, yield to agent) —
   the safety-critical decision wins whatever the steering does;
2. else a lateral manoeuvre (turn, lane change, nudge);
3. else the longitudinal decision (follow lead, accelerate, decelerate);
4. else "keep lane" when a curve is ahead (following the lane is the decision),
   and "keep speed" otherwise.

A factor is a visible cause of the decision (see ``labels.py`` for when each is set).
"""

from __future__ import annotations

DECISIONS = (  # longitudinal decisions (0-6), then lateral ones (7-13)
    "keep speed",
    "accelerate",
    "decelerate",
    "follow lead",
    "stop for traffic light",
    "stop for stop sign",
    "yield to agent",
    "keep lane",
    "nudge left",
    "nudge right",
    "lane change left",
    "lane change right",
    "turn left",
    "turn right",
)

FACTORS = (
    "lead vehicle",
    "slower lead",
    "braking lead",
    "stopped vehicle",
    "red light",
    "amber light",
    "green light",
    "stop sign",
    "pedestrian crossing",
    "pedestrian stepping out",
    "cyclist",
    "parked car",
    "cut-in vehicle",
    "merging vehicle",
    "oncoming traffic",
    "crossing traffic",
    "curve ahead",
    "speed limit",
    "route turn",
    "route lane change",
    "blocked lane",
    "clear road",
)

META_LONGITUDINAL = ("accelerate", "decelerate", "keep speed", "wait", "reverse")
META_LATERAL = ("straight", "left turn", "right turn")
META_LANE = ("keep lane", "left lane change", "right lane change")

# how each decision is said, and the word that introduces its causes
_ACTION = {
    "keep speed": ("Keep the current speed", "given"),
    "accelerate": ("Accelerate", "given"),
    "decelerate": ("Slow down", "for"),
    "follow lead": ("Follow", ""),
    "stop for traffic light": ("Stop at the stop line", "for"),
    "stop for stop sign": ("Come to a full stop", "at"),
    "yield to agent": ("Yield", "to"),
    "keep lane": ("Keep to the lane", "through"),
    "nudge left": ("Nudge left", "around"),
    "nudge right": ("Nudge right", "around"),
    "lane change left": ("Change to the left lane", "for"),
    "lane change right": ("Change to the right lane", "for"),
    "turn left": ("Turn left", "along"),
    "turn right": ("Turn right", "along"),
}
_NOUN = {
    "lead vehicle": "the lead vehicle",
    "stopped vehicle": "the stopped vehicle ahead",
    "red light": "the red light",
    "amber light": "the amber light",
    "green light": "the green light",
    "stop sign": "the stop sign",
    "pedestrian crossing": "the pedestrian crossing ahead",
    "pedestrian stepping out": "the pedestrian stepping into the road",
    "cyclist": "the cyclist ahead",
    "parked car": "the parked car",
    "cut-in vehicle": "the vehicle cutting in",
    "merging vehicle": "the merging vehicle",
    "oncoming traffic": "the oncoming traffic",
    "crossing traffic": "the crossing traffic",
    "curve ahead": "the curve ahead",
    "speed limit": "the speed limit",
    "route turn": "the route",
    "route lane change": "the route",
    "blocked lane": "the blocked lane ahead",
    "clear road": "the clear road",
}
_LEAD_CLAUSE = {"braking lead": "which is braking", "slower lead": "which is slower"}


def reasoning_sentence(decision: int | str, factors: list[int | str] | tuple = ()) -> str:
    """A one-sentence Chain-of-Causation trace: the decision, then its visible causes.

    >>> reasoning_sentence("follow lead", ["lead vehicle", "braking lead"])
    'Follow the lead vehicle, which is braking.'
    """
    name = DECISIONS[decision] if isinstance(decision, int) else decision
    names = [FACTORS[f] if isinstance(f, int) else f for f in factors]
    action, connective = _ACTION[name]
    clauses = [_LEAD_CLAUSE[f] for f in _LEAD_CLAUSE if f in names][:1]  # braking says more than slower
    nouns = [_NOUN[f] for f in FACTORS if f in names and f in _NOUN]
    if clauses and "the lead vehicle" not in nouns:
        nouns.insert(0, "the lead vehicle")
    if clauses:
        nouns[nouns.index("the lead vehicle")] += ", " + clauses[0]
    nouns = list(dict.fromkeys(nouns))  # "the route" may come from two factors
    if not nouns:
        return action + "."
    joined = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]
    return f"{action} {connective} {joined}.".replace("  ", " ")
