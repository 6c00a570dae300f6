"""Reasoning text formats: Chain-of-Causation, meta-action segments, critiques, the BPE corpus."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.policy.reasoning_text import (
    ACTION_MARK,
    CHAT_TOKENS,
    INSTRUCTION,
    SPECIAL_TOKENS,
    SYSTEM_PROMPT,
    THINKING_MARK,
    coc_text,
    corpus,
    critique_text,
    meta_action_text,
    parse_decision,
    parse_meta_action_text,
)
from redux.sim_bridge.minisim.vocabulary import DECISIONS, FACTORS, META_LANE, META_LATERAL, META_LONGITUDINAL


def test_token_names():
    assert len(SPECIAL_TOKENS) == 29
    assert SPECIAL_TOKENS["traj_future_start"] == "<|traj_future_start|>"
    assert set(CHAT_TOKENS.values()) == {
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<|vision_start|>",
        "<|vision_end|>",
    }
    assert ACTION_MARK == "Action:" and THINKING_MARK == "Thinking:"


def test_coc_text_is_the_vocabulary_sentence():
    assert coc_text("follow lead", ["lead vehicle", "braking lead"]) == "Follow the lead vehicle, which is braking."
    assert coc_text(2, [4]) == "Slow down for the red light."


@pytest.mark.parametrize("decision", range(len(DECISIONS)))
def test_parse_decision_inverts_coc_text_for_every_factor_set_size(decision):
    factor_sets = [(), *((f,) for f in range(len(FACTORS))), *itertools.combinations(range(len(FACTORS)), 2)]
    for factors in factor_sets:
        assert parse_decision(coc_text(decision, factors)) == decision
    assert parse_decision(coc_text(DECISIONS[decision], ["cyclist"])) == decision


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(DECISIONS) - 1), st.lists(st.integers(0, len(FACTORS) - 1), max_size=6))
def test_parse_decision_round_trip(decision, factors):
    assert parse_decision(coc_text(decision, factors)) == decision


def test_parse_decision_reads_only_the_opening_phrase():
    assert parse_decision("  Turn left along something garbled") == DECISIONS.index("turn left")
    assert parse_decision("Follow") == DECISIONS.index("follow lead")
    assert parse_decision("Followed the car.") is None  # a phrase must end at a word boundary
    assert parse_decision("Drive carefully.") is None
    assert parse_decision("") is None


def test_meta_action_text_format():
    segments = [(0, 32, 1, 0, 0), (32, 64, 3, 0, 0)]
    text = "0.0-3.2s decelerate, straight, keep lane; 3.2-6.4s wait, straight, keep lane"
    assert meta_action_text(segments) == text
    assert parse_meta_action_text(text) == segments
    assert meta_action_text([(95, 123, 0, 1, 2)]) == "9.5-12.3s accelerate, left turn, right lane change"


@st.composite
def segment_lists(draw):
    """Contiguous segments from step 0, as segment_meta_actions makes them."""
    bounds = sorted(draw(st.sets(st.integers(1, 200), min_size=1, max_size=6)))
    starts = [0, *bounds[:-1]]
    meta = st.tuples(
        st.integers(0, len(META_LONGITUDINAL) - 1),
        st.integers(0, len(META_LATERAL) - 1),
        st.integers(0, len(META_LANE) - 1),
    )
    return [(a, b, *draw(meta)) for a, b in zip(starts, bounds)]


@settings(max_examples=200, deadline=None)
@given(segment_lists())
def test_meta_action_text_round_trip(segments):
    assert parse_meta_action_text(meta_action_text(segments)) == segments


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0.0-3.2s decelerate, straight",
        "0.0-3.2 decelerate, straight, keep lane",
        "0.0-3.2s brake, straight, keep lane",
        "3.2-1.0s wait, straight, keep lane",
        "0.0-3.2s wait, straight, keep lane;3.2-6.4s wait, straight, keep lane",
    ],
)
def test_parse_meta_action_text_rejects_malformed_text(text):
    with pytest.raises(ValueError, match="segment|meta-action"):
        parse_meta_action_text(text)


@pytest.mark.parametrize("segments", [[], [(0, 0, 0, 0, 0)], [(0, 10, 5, 0, 0)], [(0, 10, 0, 0)]])
def test_meta_action_text_rejects_invalid_segments(segments):
    with pytest.raises(ValueError, match="segment|meta-action"):
        meta_action_text(segments)


def test_critique_text():
    keep, slow = (2, 0, 0), (1, 0, 0)
    assert (
        critique_text(keep, slow, "braking lead")
        == "Keeping speed would hit the braking lead vehicle; decelerate instead."
    )
    assert (
        critique_text((2, 0, 0), (1, 0, 1), "stopped vehicle")
        == "Keeping speed and keeping the lane would hit the stopped vehicle; "
        "decelerate and change to the left lane instead."
    )
    assert critique_text(keep, slow, "red light") == critique_text(keep, slow, "red light")


def test_critique_text_covers_every_cause_and_rejects_bad_input():
    for cause in FACTORS:
        assert critique_text((3, 0, 0), (0, 0, 0), cause).startswith("Waiting would ")
    with pytest.raises(ValueError, match="nothing to critique"):
        critique_text((2, 0, 0), (2, 0, 0), "red light")
    with pytest.raises(ValueError, match="unknown cause"):
        critique_text((2, 0, 0), (1, 0, 0), "a ghost")


def test_corpus_holds_every_format_once():
    texts = corpus()
    assert texts == corpus()  # deterministic order: the BPE trained on it is too
    assert len(texts) == len(set(texts))
    assert texts[:2] == [SYSTEM_PROMPT, INSTRUCTION]
    present = set(texts)
    assert coc_text("yield to agent", ["pedestrian crossing", "cyclist"]) in present
    assert meta_action_text([(10, 30, 0, 1, 2)]) in present
    assert all(any(name in t for t in texts) for name in (*META_LONGITUDINAL, *META_LATERAL, *META_LANE))
    critiques = [t for t in texts if t.endswith(" instead.")]
    every_cause = {_consequence(critique_text((2, 0, 0), (1, 0, 0), cause)) for cause in FACTORS}
    assert {_consequence(c) for c in critiques} == every_cause


def _consequence(critique: str) -> str:
    return critique.split(" would ")[1].split(";")[0]
