"""Training targets of every reasoning mode: fixed-length ids, a category per token, and
the text each category holds."""

from __future__ import annotations

import numpy as np
import pytest

from redux.config import PolicyConfig
from redux.policy.action_space import normalise
from redux.policy.alpamayo.factory import tokenizer_for
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.reasoning import MODES, opening_tokens
from redux.policy.alpamayo.targets import (
    COC,
    CRITIQUE,
    IGNORE,
    LATENT,
    META_ACTION,
    PROPOSAL,
    STRUCTURE,
    TRAJECTORY,
    TargetBuilder,
    plan_meta_actions,
    world_model_targets,
)
from redux.policy.reasoning_text import ACTION_MARK, THINKING_MARK, coc_text, critique_text, meta_action_text
from redux.policy.text_tokenizer import token_ids
from redux.policy.trajectory_tokens import FUTURE_BINS, encode_future
from redux.sim_bridge.minisim.vocabulary import FACTORS, META_LANE, META_LATERAL, META_LONGITUDINAL

PRESET = get_preset("tiny")
SPEED = 10.0
KEEP_SPEED = META_LONGITUDINAL.index("keep speed")
STRAIGHT, KEEP_LANE = META_LATERAL.index("straight"), META_LANE.index("keep lane")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_for(PolicyConfig(kind="alpamayo", preset="tiny"))


@pytest.fixture(scope="module")
def ids(tokenizer):
    return token_ids(tokenizer)


def builder(tokenizer, ids, mode: str, trajectory_tokens: bool = False, max_tokens: int | None = None):
    max_tokens = PRESET.max_reasoning_tokens if max_tokens is None else max_tokens
    return TargetBuilder(
        tokenizer, ids, mode, max_tokens, trajectory_tokens, PRESET.latent_blocks, PRESET.proposal_tokens
    )


def labels(decision: int = 2, factors: tuple[int, ...] = (2,), **extra) -> dict:
    return {"decision": decision, "factors": np.isin(np.arange(len(FACTORS)), factors), **extra}


def constant_plan(accel: float = 0.0, curvature: float = 0.0) -> np.ndarray:
    """Normalised actions of a plan holding one acceleration and curvature."""
    return normalise(np.tile(np.array([accel, curvature], dtype=np.float32), (64, 1)))


def plans() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [constant_plan(), constant_plan(-1.0), constant_plan(0.5, 0.01), normalise(rng.normal(0, [1.0, 0.02], (64, 2)))]


# --- shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("trajectory_tokens", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_targets_have_the_builders_fixed_length(tokenizer, ids, mode, trajectory_tokens):
    build = builder(tokenizer, ids, mode, trajectory_tokens)
    cases = [labels(d, f) for d, f in [(0, ()), (2, (2,)), (6, (8, 9)), (12, (18, 16))]]
    for case, actions in zip(cases, plans()):
        target = build.build(case, actions, SPEED)
        assert target.ids.shape == target.categories.shape == (build.length,)
        assert target.ids.dtype == np.int64 and target.categories.dtype == np.int8
        assert list(target.ids[:1]) == opening_tokens(mode, ids) and target.categories[0] == STRUCTURE
        stop = np.flatnonzero(target.ids == ids.traj_future_start)
        assert len(stop) == 1  # the expert takes over there, once
        said = stop[0] + 1 + (129 if trajectory_tokens else 0)  # then the trajectory codes, if trained
        assert (target.ids[said:] == ids.endoftext).all()
        assert (target.categories[said:] == IGNORE).all()
        assert (target.categories[:said] != IGNORE).all()
    expected = {"none": 1, "coc": 1 + PRESET.max_reasoning_tokens, "cfvla": 1 + PRESET.max_reasoning_tokens}
    expected["lcdrive"] = 1 + PRESET.latent_blocks * (PRESET.proposal_tokens + 1) + 2
    assert build.length == expected[mode] + (129 if trajectory_tokens else 0)


def test_an_overlong_reasoning_is_cut_before_its_stop_token(tokenizer, ids):
    build = builder(tokenizer, ids, "coc", max_tokens=6)
    target = build.build(labels(6, (8, 9, 10)), constant_plan(), SPEED)
    assert target.ids.shape == (7,)
    assert target.ids[-1] == ids.traj_future_start and target.categories[-1] == STRUCTURE


# --- categories and text ----------------------------------------------------------------


@pytest.mark.parametrize("decision, factors", [(0, ()), (2, (2,)), (4, (4, 8)), (12, (18,))])
def test_coc_target_decodes_to_the_chain_of_causation_sentence(tokenizer, ids, decision, factors):
    target = builder(tokenizer, ids, "coc").build(labels(decision, factors), constant_plan(), SPEED)
    cats = target.categories
    assert tokenizer.decode(target.ids[cats == COC]) == coc_text(decision, list(factors))
    structure = target.ids[cats == STRUCTURE]
    assert list(structure) == [ids.cot_start, ids.cot_end, ids.traj_future_start]
    assert set(np.unique(cats)) == {IGNORE, STRUCTURE, COC}


def test_cfvla_committed_target(tokenizer, ids):
    target = builder(tokenizer, ids, "cfvla").build(labels(), constant_plan(), SPEED)
    cats = target.categories
    truth = [(0, 65, KEEP_SPEED, STRAIGHT, KEEP_LANE)]
    assert tokenizer.decode(target.ids[cats == META_ACTION]) == meta_action_text(truth)
    assert ids.action_mark in target.ids[cats == STRUCTURE]
    assert ids.thinking_mark not in target.ids and not (cats == CRITIQUE).any()
    assert set(np.unique(cats)) == {IGNORE, STRUCTURE, META_ACTION}
    # first meta-actions equal to the plan's are a commitment too
    same = builder(tokenizer, ids, "cfvla").build(labels(cfvla_first_meta_actions=truth), constant_plan(), SPEED)
    np.testing.assert_array_equal(same.ids, target.ids)


def test_cfvla_critiqued_target_has_thinking_critique_and_revision(tokenizer, ids):
    accelerate = META_LONGITUDINAL.index("accelerate")
    first = [(0, 65, accelerate, STRAIGHT, KEEP_LANE)]
    truth = [(0, 65, KEEP_SPEED, STRAIGHT, KEEP_LANE)]
    case = labels(cfvla_first_meta_actions=first, cfvla_cause="braking lead")
    # room for the whole trace (the tiny preset's 24 tokens cut it)
    target = builder(tokenizer, ids, "cfvla", max_tokens=96).build(case, constant_plan(), SPEED)
    text = tokenizer.decode(target.ids)
    assert THINKING_MARK in text and ACTION_MARK not in text
    critique = tokenizer.decode(target.ids[target.categories == CRITIQUE])
    assert critique == critique_text(first[0][2:], truth[0][2:], "braking lead")
    assert critique == "Accelerating would hit the braking lead vehicle; keep speed instead."
    meta = target.ids[target.categories == META_ACTION]  # the first meta-actions, then the revised ones
    first_length = len(tokenizer(meta_action_text(first), add_special_tokens=False)["input_ids"])
    assert tokenizer.decode(meta[:first_length]) == meta_action_text(first)
    assert tokenizer.decode(meta[first_length:]) == meta_action_text(truth)
    thinking = int(np.flatnonzero(target.ids == ids.thinking_mark)[0])
    revised = int(np.flatnonzero(target.categories == META_ACTION)[-1])
    assert thinking < int(np.flatnonzero(target.categories == CRITIQUE)[0]) < revised
    assert target.ids[revised + 1] == ids.meta_action_end and target.ids[revised + 2] == ids.traj_future_start


def test_a_critiqued_cfvla_trace_fits_the_presets_reasoning_budget(tokenizer, ids):
    first = [(0, 65, META_LONGITUDINAL.index("accelerate"), STRAIGHT, KEEP_LANE)]
    truth = [(0, 65, KEEP_SPEED, STRAIGHT, KEEP_LANE)]
    case = labels(cfvla_first_meta_actions=first, cfvla_cause="braking lead")
    target = builder(tokenizer, ids, "cfvla").build(case, constant_plan(), SPEED)  # the preset's budget
    meta_tokens = sum(len(tokenizer(meta_action_text(m), add_special_tokens=False)["input_ids"]) for m in (first, truth))
    assert (target.categories == META_ACTION).sum() == meta_tokens  # the revision is all there
    stop = int(np.flatnonzero(target.ids == ids.traj_future_start)[0])
    assert target.ids[stop - 1] == ids.meta_action_end


def test_trajectory_tokens_follow_the_stop_token(tokenizer, ids):
    actions = plans()[3]
    for mode in MODES:
        build = builder(tokenizer, ids, mode, trajectory_tokens=True)
        target = build.build(labels(), actions, SPEED)
        stop = int(np.flatnonzero(target.ids == ids.traj_future_start)[0])
        codes, cats = target.ids[stop + 1 : stop + 130], target.categories[stop + 1 : stop + 130]
        # directly after the stop token, as decoding continues from it; the padding comes last
        assert (cats == TRAJECTORY).all() and (target.categories == TRAJECTORY).sum() == 129
        np.testing.assert_array_equal(codes[:128], encode_future(actions) + ids.traj_start)
        assert codes[128] == ids.traj_future_end
        assert (target.categories[stop + 130 :] == IGNORE).all()


def test_lcdrive_target_alternates_proposals_and_latents(tokenizer, ids):
    actions = plans()[3]
    target = builder(tokenizer, ids, "lcdrive").build(labels(), actions, SPEED)
    block = PRESET.proposal_tokens + 1
    body = target.ids[1 : 1 + PRESET.latent_blocks * block].reshape(PRESET.latent_blocks, block)
    cats = target.categories[1 : 1 + PRESET.latent_blocks * block].reshape(PRESET.latent_blocks, block)
    assert (cats[:, :-1] == PROPOSAL).all() and (cats[:, -1] == LATENT).all()
    assert (body[:, -1] == ids.vectorized_wm).all()
    proposals = body[:, :-1]
    assert ((proposals >= ids.traj_start) & (proposals < ids.traj_start + FUTURE_BINS)).all()
    # block b proposes second b: every other 0.1 s step's (accel, curvature) codes
    codes = (encode_future(actions) + ids.traj_start).reshape(64, 2)
    for b in range(PRESET.latent_blocks):
        np.testing.assert_array_equal(proposals[b], codes[b * 10 + 1 : (b + 1) * 10 : 2].reshape(-1))
    assert list(target.ids[-2:]) == [ids.vectorized_wm_end, ids.traj_future_start]
    assert (target.categories == LATENT).sum() == PRESET.latent_blocks


# --- meta-actions of a plan, world-model targets ----------------------------------------


@pytest.mark.parametrize("speed", [5.0, 12.0])
def test_a_constant_speed_straight_plan_is_one_keep_speed_segment(speed):
    assert plan_meta_actions(constant_plan(), speed) == [(0, 65, KEEP_SPEED, STRAIGHT, KEEP_LANE)]


def test_a_braking_plan_says_decelerate():
    segments = plan_meta_actions(constant_plan(-1.0), 10.0)
    assert segments[0][:3] == (0, segments[0][1], META_LONGITUDINAL.index("decelerate"))
    assert segments[-1][1] == 65 and all(s[3:] == (STRAIGHT, KEEP_LANE) for s in segments)


def test_world_model_targets_shape_dtype_and_determinism():
    actions = plans()[2]
    first = world_model_targets(labels(), actions, SPEED, PRESET.latent_blocks, PRESET.latent_dim)
    again = world_model_targets(labels(), actions, SPEED, PRESET.latent_blocks, PRESET.latent_dim)
    assert first.shape == (PRESET.latent_blocks, PRESET.latent_dim) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    other = world_model_targets(labels(4, (4,)), actions, SPEED, PRESET.latent_blocks, PRESET.latent_dim)
    assert not np.allclose(first, other)  # the decision and its factors are in the target
    slower = world_model_targets(labels(), plans()[1], SPEED, PRESET.latent_blocks, PRESET.latent_dim)
    assert not np.allclose(first, slower)  # and so is the ego's future
