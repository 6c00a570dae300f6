"""The text the policy reads and writes: prompts, token names and the reasoning formats.

Three reasoning formats, all over the closed sets of ``minisim.vocabulary``:

- Chain-of-Causation (Alpamayo-R1): one sentence naming the decision, then its
  visible causes — ``coc_text`` / ``parse_decision``;
- meta-actions (CF-VLA): time segments of (longitudinal, lateral, lane) at 0.1 s —
  ``meta_action_text`` / ``parse_meta_action_text``;
- a counterfactual critique (CF-VLA): after its first meta-actions the model writes
  ``ACTION_MARK`` (keep them) or ``THINKING_MARK`` followed by a critique of them and
  revised meta-actions — ``critique_text``.

``corpus`` lists every string these formats produce; the tokenizer's BPE is trained
on it, so the reasoning of the embedded presets costs few tokens.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from redux.sim_bridge.minisim.vocabulary import (
    DECISIONS,
    FACTORS,
    META_LANE,
    META_LATERAL,
    META_LONGITUDINAL,
    reasoning_sentence,
)

_SPECIAL_NAMES = (
    "prompt_start",
    "prompt_end",
    "image_start",
    "image_pre_tkn",
    "image_end",
    "traj_history_start",
    "traj_history_pre_tkn",
    "traj_history_end",
    "cot_start",
    "cot_end",
    "meta_action_start",
    "meta_action_end",
    "traj_future_start",
    "traj_future_pre_tkn",
    "traj_future_end",
    "traj_history",
    "traj_future",
    "image_pad",
    "vectorized_wm",
    "vectorized_wm_start",
    "vectorized_wm_end",
    "vectorized_wm_pre_tkn",
    "route_start",
    "route_pad",
    "route_end",
    "question_start",
    "question_end",
    "answer_start",
    "answer_end",
)
# Alpamayo's published special tokens; the names double as TokenIds fields
SPECIAL_TOKENS = {name: f"<|{name}|>" for name in _SPECIAL_NAMES}
# Qwen's chat template and vision delimiters; <|endoftext|> is Qwen's pad token
CHAT_TOKENS = {name: f"<|{name}|>" for name in ("im_start", "im_end", "endoftext", "vision_start", "vision_end")}
PAD_TOKEN = CHAT_TOKENS["endoftext"]
EOS_TOKEN = CHAT_TOKENS["im_end"]

# CF-VLA: after its first meta-actions the model either commits or critiques them
ACTION_MARK = "Action:"
THINKING_MARK = "Thinking:"

SYSTEM_PROMPT = "You are a driving assistant that generates safe and accurate actions."
INSTRUCTION = "Reason about the driving scene: name the decision and its causes, then output the future trajectory."


def coc_text(decision: int | str, factors: Sequence[int | str] = ()) -> str:
    """The Chain-of-Causation sentence for a decision and its causal factors (indices or names)."""
    return reasoning_sentence(decision, list(factors))


# "Keep the current speed." -> decision 0: each decision's sentence starts with its own phrase
_DECISION_PHRASES = sorted(
    ((reasoning_sentence(d).rstrip("."), d) for d in range(len(DECISIONS))), key=lambda pair: -len(pair[0])
)


def parse_decision(text: str) -> int | None:
    """The decision index a Chain-of-Causation sentence names, or None if it names none.

    Only the opening phrase is read, so any (or no, or garbled) factor part parses.
    """
    text = text.strip()
    for phrase, decision in _DECISION_PHRASES:  # longest first: no phrase shadows a longer one
        if text.startswith(phrase) and text[len(phrase) : len(phrase) + 1] in ("", " ", ".", ","):
            return decision
    return None


Segment = tuple[int, int, int, int, int]  # (start_step, end_step exclusive, longitudinal, lateral, lane)

_AXES = (META_LONGITUDINAL, META_LATERAL, META_LANE)


def _seconds(step: int) -> str:
    # integer arithmetic: 0.1 s steps print exactly, with no float rounding
    return f"{step // 10}.{step % 10}"


def _check_segment(segment: Sequence[int]) -> None:
    if len(segment) != 5:
        raise ValueError(f"a segment is (start, end, longitudinal, lateral, lane), got {segment!r}")
    start, end, *meta = segment
    if not 0 <= start < end:
        raise ValueError(f"a segment needs 0 <= start < end, got {start}-{end} in {segment!r}")
    for value, names in zip(meta, _AXES):
        if not 0 <= value < len(names):
            raise ValueError(f"meta-action index {value} out of range 0..{len(names) - 1} in {segment!r}")


def meta_action_text(segments: Sequence[Sequence[int]]) -> str:
    """'0.0-3.2s decelerate, straight, keep lane; 3.2-6.4s wait, straight, keep lane'.

    ``segments`` are (start_step, end_step exclusive, longitudinal, lateral, lane) at
    0.1 s, as ``minisim.meta_actions.segment_meta_actions`` returns them. A plan has
    at least one segment; ValueError on none or on an invalid one. Gaps or overlaps
    between segments are not checked here: they are the caller's data.
    """
    if not segments:
        raise ValueError("meta_action_text needs at least one segment")
    parts = []
    for segment in segments:
        _check_segment(segment)
        start, end, lon, lat, lane = (int(v) for v in segment)
        parts.append(
            f"{_seconds(start)}-{_seconds(end)}s {META_LONGITUDINAL[lon]}, {META_LATERAL[lat]}, {META_LANE[lane]}"
        )
    return "; ".join(parts)


_SEGMENT_RE = re.compile(r"(\d+)\.(\d)-(\d+)\.(\d)s ([a-z ]+), ([a-z ]+), ([a-z ]+)")


def parse_meta_action_text(text: str) -> list[Segment]:
    """The segments of a ``meta_action_text`` string (the inverse of it).

    Raises ValueError naming the offending part on malformed text (generated text is
    checked here rather than trusted), so a caller that samples decides what to do.
    """
    segments = []
    for part in text.strip().split("; "):
        match = _SEGMENT_RE.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"malformed meta-action segment {part!r}: expected 'S.S-E.Es lon, lat, lane'")
        start, end = int(match[1]) * 10 + int(match[2]), int(match[3]) * 10 + int(match[4])
        meta = []
        for name, names in zip(match.groups()[4:], _AXES):
            if name not in names:
                raise ValueError(f"unknown meta-action {name!r} in {part!r}; expected one of {names}")
            meta.append(names.index(name))
        segment = (start, end, *meta)
        _check_segment(segment)
        segments.append(segment)
    return segments


# per meta-action: how the critique names doing it (gerund) and asks for it (imperative)
_META_PHRASES = {
    "accelerate": ("accelerating", "accelerate"),
    "decelerate": ("decelerating", "decelerate"),
    "keep speed": ("keeping speed", "keep speed"),
    "wait": ("waiting", "wait"),
    "reverse": ("reversing", "reverse"),
    "straight": ("going straight", "go straight"),
    "left turn": ("turning left", "turn left"),
    "right turn": ("turning right", "turn right"),
    "keep lane": ("keeping the lane", "keep the lane"),
    "left lane change": ("changing to the left lane", "change to the left lane"),
    "right lane change": ("changing to the right lane", "change to the right lane"),
}
# per factor: what the first plan would do wrong with respect to it
_CAUSE_PHRASES = {
    "lead vehicle": "hit the lead vehicle",
    "slower lead": "hit the slower lead vehicle",
    "braking lead": "hit the braking lead vehicle",
    "stopped vehicle": "hit the stopped vehicle",
    "red light": "run the red light",
    "amber light": "run the amber light",
    "green light": "waste the green light",
    "stop sign": "run the stop sign",
    "pedestrian crossing": "endanger the pedestrian crossing",
    "pedestrian stepping out": "hit the pedestrian stepping out",
    "cyclist": "hit the cyclist",
    "parked car": "hit the parked car",
    "cut-in vehicle": "hit the cut-in vehicle",
    "merging vehicle": "hit the merging vehicle",
    "oncoming traffic": "cross the oncoming traffic",
    "crossing traffic": "hit the crossing traffic",
    "curve ahead": "overshoot the curve ahead",
    "speed limit": "break the speed limit",
    "route turn": "leave the route",
    "route lane change": "leave the route",
    "blocked lane": "run into the blocked lane",
    "clear road": "waste the clear road",
}


def critique_text(first: Sequence[int], revised: Sequence[int], cause: str) -> str:
    """'Keeping speed would hit the braking lead vehicle; decelerate instead.'

    ``first`` and ``revised`` are (longitudinal, lateral, lane) meta-actions (e.g. a
    segment's last three entries); the critique names the axes on which they differ.
    ``cause`` is a ``FACTORS`` name. ValueError if nothing differs or the cause is unknown.
    """
    if cause not in _CAUSE_PHRASES:
        raise ValueError(f"unknown cause {cause!r}; expected one of {FACTORS}")
    changed = [(names[a], names[b]) for a, b, names in zip(first, revised, _AXES, strict=True) if a != b]
    if not changed:
        raise ValueError(f"first and revised meta-actions are the same ({tuple(first)}): nothing to critique")
    done = " and ".join(_META_PHRASES[old][0] for old, _ in changed)
    instead = " and ".join(_META_PHRASES[new][1] for _, new in changed)
    return f"{done[0].upper()}{done[1:]} would {_CAUSE_PHRASES[cause]}; {instead} instead."


_TIME_GRID = range(0, 66, 5)  # 0.0-6.5 s: the 64-step plan and its start


def corpus() -> list[str]:
    """Every kind of string the reasoning contains, without duplicates, in a fixed order."""
    texts = [SYSTEM_PROMPT, INSTRUCTION]
    factor_sets = [(), *((f,) for f in FACTORS), *itertools.combinations(FACTORS, 2)]
    texts += [coc_text(d, fs) for d in DECISIONS for fs in factor_sets]
    triples = list(itertools.product(*(range(len(names)) for names in _AXES)))
    texts += [
        meta_action_text([(start, end, *meta)])
        for meta in triples
        for start, end in itertools.combinations(_TIME_GRID, 2)
    ]
    pairs = list(itertools.permutations(triples, 2))
    texts += [meta_action_text([(0, 32, *a), (32, 65, *b)]) for a, b in pairs]
    # every ordered pair once, the causes taken in turn: all phrases and joins, a small corpus
    texts += [critique_text(a, b, FACTORS[i % len(FACTORS)]) for i, (a, b) in enumerate(pairs)]
    return list(dict.fromkeys(texts))
