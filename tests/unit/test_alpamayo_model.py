"""The Alpamayo network and policy at the `tiny` preset: every reasoning mode's outputs and
grammar, the expert's reading of the backbone cache, determinism, log-probabilities, and
that behaviour cloning lowers the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from redux.config import LearnerConfig, PolicyConfig, RunConfig
from redux.learner.batch import collate
from redux.learner.objectives import make_objective
from redux.policy.alpamayo import policy as policy_module
from redux.policy.alpamayo.factory import build_alpamayo
from redux.policy.alpamayo.model import AlpamayoR1, ExpertPrefix
from redux.policy.alpamayo.policy import AlpamayoPolicy
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.reasoning import (
    MODES, Sampling, allowed_tokens, future_codes, opening_tokens, prefill, reason, replay, sampling_log_probs,
    score_reasoning,
)  # fmt: skip
from redux.policy.alpamayo.targets import IGNORE, LATENT, STRUCTURE, TRAJECTORY, TargetBuilder
from redux.policy.alpamayo.training import TeacherForcedBatch, teacher_forced_losses, teacher_forced_pass
from redux.policy.action_space import denormalise, normalise
from redux.policy.flow_matching import euler_sample, sde_log_prob
from redux.policy.trajectory_tokens import FUTURE_BINS, decode_future, encode_future
from redux.sim_bridge.minisim.vocabulary import FACTORS
from redux.sim_bridge.session import Observation

PRESET = get_preset("tiny")
B, K = 2, 3


def config(mode: str) -> PolicyConfig:
    return PolicyConfig(kind="alpamayo", preset="tiny", reasoning=mode)


def observations(n: int, seed: int = 0) -> list[Observation]:
    """Random 0/255 masks for the preset's image (minisim's BEV raster); ego histories of
    straight driving at a few m/s, oldest pose first."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        speed = rng.uniform(3.0, 12.0)
        history = np.zeros((16, 3), dtype=np.float32)
        history[:, 0] = -speed * 0.1 * np.arange(15, -1, -1)
        history[:, 1] = rng.normal(0.0, 0.05, 16)
        history[-1] = 0.0  # t0 is the origin of the rig frame
        shape = (PRESET.frames, PRESET.vision.channels, PRESET.image_height, PRESET.image_width)
        cameras = {camera: rng.choice(np.array([0, 255], dtype=np.uint8), shape) for camera in PRESET.cameras}
        out.append(Observation(cameras, history, np.full((20, 3), np.nan), time_us=0))
    return out


def new_model(seed: int = 0, mode: str = "none"):
    torch.manual_seed(seed)
    return build_alpamayo(config(mode)).eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model is fastest on one thread, and the box may be busy training."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return new_model(seed=0)


@pytest.fixture(scope="module")
def ids(model):
    return model.prompts.ids


@pytest.fixture(scope="module")
def obs():
    return observations(B)


@pytest.fixture(scope="module")
def prompt(model, obs):
    policy = AlpamayoPolicy(model, model.tokenizer, config("none"))
    inputs = policy.model_inputs(obs)
    return model.prompts.build(inputs["frames"], inputs["ego_history"])


@pytest.fixture(scope="module")
def sampled(model, obs):
    """One sampled act per mode, B observations × K samples, on the same weights."""
    out = {}
    for mode in MODES:
        policy = AlpamayoPolicy(model, model.tokenizer, config(mode), seed=1)
        out[mode] = policy.act(obs, num_samples=K)
    return out


# --- outputs and grammar of every mode ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_act_shapes_log_probs_and_timings(sampled, mode):
    out = sampled[mode]
    assert out.actions.shape == (B, K, 64, 2) and out.actions.dtype == np.float32
    assert out.poses.shape == (B, K, 64, 3)
    assert out.log_probs.shape == (B, K) and np.isfinite(out.log_probs).all()
    assert np.isfinite(out.actions).all() and np.isfinite(out.poses).all()
    for key in ("decision_ms", "reasoning_ms", "flow_ms", "total_ms"):
        assert out.timings[key] >= 0.0
    assert out.timings["total_ms"] >= out.timings["reasoning_ms"] + out.timings["flow_ms"]
    # a plan's log-probability is its reasoning's plus its flow chain's
    extras = out.extras
    np.testing.assert_allclose(out.log_probs, extras["token_log_probs"] + extras["flow_log_probs"], rtol=1e-6)
    assert (extras["token_log_probs"] <= 0).all()
    thinking = extras["thinking"]
    assert thinking.dtype == np.bool_ and thinking.shape == (B, K)
    assert 0.0 <= float(thinking.mean()) <= 1.0
    if mode != "cfvla":
        assert not thinking.any()  # only CF-VLA has a Thinking: mark to write
    assert len(out.reasoning) == B * K and all(isinstance(text, str) for text in out.reasoning)


@pytest.mark.parametrize("mode", MODES)
def test_reasoning_ends_with_traj_future_start_then_pads(sampled, ids, mode):
    tokens, lengths = sampled[mode].extras["reasoning_ids"], sampled[mode].extras["reasoning_lengths"]
    assert lengths.shape == (B, K) and tokens.shape[:2] == (B, K)
    if mode == "none":  # the prompt's opening token is <|traj_future_start|> itself
        assert tokens.shape[2] == 0 and (lengths == 0).all()
        return
    assert (lengths >= 1).all() and (lengths <= tokens.shape[2]).all()
    for row, n in zip(tokens.reshape(B * K, -1), lengths.reshape(-1)):
        assert row[n - 1] == ids.traj_future_start
        assert ids.traj_future_start not in row[: n - 1]
        assert (row[n:] == ids.endoftext).all()


def _bodies(out):
    """Each sample's reasoning before its stop token."""
    tokens, lengths = out.extras["reasoning_ids"], out.extras["reasoning_lengths"]
    return [row[: n - 1] for row, n in zip(tokens.reshape(B * K, -1), lengths.reshape(-1))]


def test_coc_text_has_no_trajectory_tokens_or_cfvla_marks(sampled, ids):
    marks = [ids.action_mark, ids.thinking_mark, ids.meta_action_start, ids.meta_action_end, ids.vectorized_wm]
    allowed = allowed_tokens("coc", ids).numpy()
    for body in _bodies(sampled["coc"]):
        assert allowed[body].all()
        assert not ((body >= ids.traj_start) & (body < ids.traj_start + ids.traj_vocab_size)).any()
        assert not np.isin(body, marks).any()


def test_cfvla_tokens_are_text_and_its_marks_only(sampled, ids):
    allowed = allowed_tokens("cfvla", ids).numpy()
    extra = {ids.meta_action_start, ids.meta_action_end, ids.action_mark, ids.thinking_mark, ids.traj_future_start}
    assert set(np.flatnonzero(allowed[ids.traj_start :]) + ids.traj_start) == extra
    for body in _bodies(sampled["cfvla"]):
        assert allowed[body].all()
        assert not np.isin(body, [ids.cot_start, ids.cot_end, ids.vectorized_wm]).any()


def test_lcdrive_follows_the_block_rhythm(sampled, model, ids):
    preset = model.preset
    block, blocks = preset.proposal_tokens + 1, preset.latent_blocks
    out = sampled["lcdrive"]
    tokens, lengths = out.extras["reasoning_ids"], out.extras["reasoning_lengths"]
    assert (lengths == blocks * block + 2).all()
    for row in tokens.reshape(B * K, -1):
        grid = row[: blocks * block].reshape(blocks, block)
        proposals = grid[:, :-1]
        assert ((proposals >= ids.traj_start) & (proposals < ids.traj_start + FUTURE_BINS)).all()
        assert (grid[:, -1] == ids.vectorized_wm).all()
        assert list(row[blocks * block :]) == [ids.vectorized_wm_end, ids.traj_future_start]
    latents = out.extras["latents"]
    assert latents.shape == (B, K, blocks, preset.latent_dim) and latents.dtype == np.float32
    assert np.isfinite(latents).all()


# --- token and flow log-probabilities ---------------------------------------------------


@pytest.mark.parametrize("mode", ["coc", "cfvla", "lcdrive"])
def test_token_log_probs_are_non_positive_and_zero_where_nothing_was_sampled(model, ids, prompt, mode):
    generator = torch.Generator().manual_seed(3)
    with torch.inference_mode():
        reasoning, _ = reason(model, ids, prompt, mode, K, Sampling(), generator)
    log_probs, tokens, lengths = reasoning.log_probs, reasoning.tokens, reasoning.lengths
    assert log_probs.shape == tokens.shape == (B * K, tokens.shape[1])
    assert (log_probs <= 0).all() and torch.isfinite(log_probs).all()
    pads = torch.arange(tokens.shape[1])[None, :] >= lengths[:, None]
    assert (log_probs[pads] == 0).all()
    if mode == "lcdrive":  # latents and the closing tokens are not sampled
        assert (log_probs[tokens == ids.vectorized_wm] == 0).all()
        assert (log_probs[:, -2:] == 0).all()
    else:  # the last step is forced to the stop token
        forced = lengths == model.preset.max_reasoning_tokens
        assert (log_probs[forced, -1] == 0).all()


def test_token_log_probs_are_the_tempered_restricted_distribution(model, ids, prompt):
    """What GRPO's ratio compares against: the distribution each token was drawn from — softmax(logits / T)
    over the mode's allowed tokens, cut to the top-p nucleus and renormalised — recomputed here
    by one teacher-forced pass over prompt + opening + the sampled tokens."""
    sampling = Sampling(temperature=0.7, top_p=0.9)
    with torch.inference_mode():
        reasoning, _ = reason(model, ids, prompt, "coc", 1, sampling, torch.Generator().manual_seed(4))
        opening = torch.tensor(opening_tokens("coc", ids)).expand(B, -1)
        sequence = torch.cat([prompt.input_ids, opening, reasoning.tokens], dim=1)
        alive = torch.arange(reasoning.tokens.shape[1])[None, :] < reasoning.lengths[:, None]
        attention = torch.cat([torch.ones(B, sequence.shape[1] - alive.shape[1], dtype=torch.bool), alive], dim=1)
        image_mask = torch.cat([prompt.image_mask, torch.zeros_like(sequence[:, prompt.input_ids.shape[1] :]).bool()], 1)
        positions, _ = model.rope_index(sequence, image_mask.int(), prompt.image_grid_thw, attention.long())
        hidden, _ = model.backbone(
            model.embed(sequence), positions, attention.long(),
            pixel_values=prompt.pixel_values, image_grid_thw=prompt.image_grid_thw,
        )  # fmt: skip
        start = sequence.shape[1] - reasoning.tokens.shape[1]
        logits = model.logits(hidden[:, start - 1 : -1]).float()
        logits = logits.masked_fill(~allowed_tokens("coc", ids), float("-inf"))
        probs = torch.softmax(logits / sampling.temperature, -1)
        chosen = probs.gather(2, reasoning.tokens[..., None])[..., 0]
        # the nucleus: the most likely tokens while the mass before each is below top_p
        ordered = probs.sort(-1, descending=True).values
        kept = ordered * ((ordered.cumsum(-1) - ordered) < sampling.top_p)
        expected = torch.log(chosen / kept.sum(-1))
        mass_above_chosen = (probs * (probs > chosen[..., None])).sum(-1)
    sampled = alive.clone()
    sampled[reasoning.lengths == model.preset.max_reasoning_tokens, -1] = False  # the forced stop token
    assert bool((mass_above_chosen[sampled] < sampling.top_p).all())  # every drawn token was in the nucleus
    torch.testing.assert_close(reasoning.log_probs[sampled], expected[sampled], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["coc", "cfvla"])
def test_replaying_a_decoded_reasoning_rebuilds_its_cache_and_scores(model, ids, prompt, mode):
    """What the vLLM engine relies on: one pass over prompt + tokens decoded elsewhere gives the
    expert the view decoding left behind, and the log-probs decoding reported."""
    sampling = Sampling(temperature=0.8, top_p=0.95)
    k = 3
    with torch.inference_mode():
        reasoning, decoded = reason(model, ids, prompt, mode, k, sampling, torch.Generator().manual_seed(7))
        replayed = replay(model, ids, prompt, mode, reasoning.tokens, reasoning.lengths)
        scores = score_reasoning(model, ids, prompt, mode, reasoning.tokens, reasoning.lengths, sampling)
        x, t = torch.randn(B * k, 64, 2, generator=torch.Generator().manual_seed(0)), torch.full((B * k,), 0.4)
        torch.testing.assert_close(model.velocity(x, t, replayed), model.velocity(x, t, decoded), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores, reasoning.log_probs, atol=1e-4, rtol=1e-4)
    assert torch.equal(replayed.action_positions, decoded.action_positions)


def test_embedded_presets_read_the_raster_as_coverage_from_zero(model, obs):
    """An empty BEV pixel is 0 and a fully covered one 1 (not Qwen's -1 / +1 for photographs)."""
    policy = AlpamayoPolicy(model, model.tokenizer, config("none"))
    frames = policy.model_inputs(obs[:1])["frames"]
    empty = model.prompts.build(np.zeros_like(frames), np.zeros((1, 16, 3), np.float32))
    full = model.prompts.build(np.full_like(frames, 255), np.zeros((1, 16, 3), np.float32))
    assert torch.count_nonzero(empty.pixel_values) == 0
    torch.testing.assert_close(full.pixel_values, torch.ones_like(full.pixel_values))


def test_prompt_embeddings_put_the_vision_features_in_the_image_slots(model, ids, prompt):
    """The language model fed these embeddings (what vLLM is given) computes what the prefill does."""
    opening = torch.tensor(opening_tokens("coc", ids)).expand(B, -1)
    input_ids = torch.cat([prompt.input_ids, opening], dim=1)
    with torch.inference_mode():
        embeds = model.prompt_embeddings(input_ids, prompt.pixel_values, prompt.image_grid_thw)
        text_only = model.embed(input_ids)
        hidden, _, _, length = prefill(model, prompt, opening_tokens("coc", ids))
        positions = torch.arange(length)[None].expand(3, B, -1)
        again, _ = model.backbone(embeds, positions, torch.ones_like(input_ids))
    image = torch.cat([prompt.image_mask, torch.zeros_like(opening, dtype=torch.bool)], dim=1)
    assert torch.equal(embeds[~image], text_only[~image]) and not torch.equal(embeds[image], text_only[image])
    torch.testing.assert_close(again, hidden, atol=1e-5, rtol=1e-5)


def test_flow_log_probs_are_the_sde_chain_density(model, obs, monkeypatch):
    seen = {}
    sample = policy_module.sde_sample

    def spy(velocity_fn, noise, steps, noise_level, generator=None):
        seen.update(velocity_fn=velocity_fn, steps=steps, noise_level=noise_level)
        seen["sample"] = sample(velocity_fn, noise, steps, noise_level, generator)
        return seen["sample"]

    monkeypatch.setattr(policy_module, "sde_sample", spy)
    out = AlpamayoPolicy(model, model.tokenizer, config("coc"), seed=5).act(obs, num_samples=K)
    with torch.inference_mode():
        recomputed = sde_log_prob(seen["velocity_fn"], seen["sample"].chain, seen["steps"], seen["noise_level"])
    np.testing.assert_allclose(out.extras["flow_log_probs"].reshape(-1), recomputed.numpy(), rtol=1e-5, atol=1e-3)
    assert seen["steps"] == model.preset.flow_steps and seen["noise_level"] == config("coc").sde_noise


# --- the expert reads the backbone's cache ----------------------------------------------


def _perturbed(prefix: ExpertPrefix, where: torch.Tensor, seed: int) -> ExpertPrefix:
    """``prefix`` with noise added to every layer's keys and values at the cache positions ``where`` (N, L)."""
    generator = torch.Generator().manual_seed(seed)
    pairs = []
    for keys, values in prefix.key_values:
        mask = where[:, None, :, None].to(keys.dtype)
        pairs.append(
            (
                keys + 3.0 * mask * torch.randn(keys.shape, generator=generator),
                values + 3.0 * mask * torch.randn(values.shape, generator=generator),
            )
        )
    return ExpertPrefix(pairs, prefix.attention_mask, prefix.action_positions)


@pytest.fixture(scope="module")
def prefix_and_valid(model, ids, prompt):
    """The expert's view of a prompt cache in which some positions are marked padding."""
    with torch.inference_mode():
        _, cache, deltas, length = prefill(model, prompt, opening_tokens("none", ids))
    valid = torch.ones(B, length, dtype=torch.bool)
    valid[:, -6:-1] = False
    valid[0, 20:40] = False
    return ExpertPrefix.from_cache(cache, valid, length + deltas), valid


def _velocity(model, prefix):
    generator = torch.Generator().manual_seed(6)
    x = torch.randn(B, 64, 2, generator=generator)
    t = torch.rand(B, generator=generator)
    with torch.inference_mode():
        return model.velocity(x, t, prefix)


def test_expert_velocity_reads_the_cache(model, prefix_and_valid):
    prefix, valid = prefix_and_valid
    base = _velocity(model, prefix)
    torch.testing.assert_close(_velocity(model, prefix), base, atol=0, rtol=0)  # the prefix is not consumed
    one_position = torch.zeros_like(valid)
    one_position[:, 5] = True
    changed = _velocity(model, _perturbed(prefix, one_position, seed=7))
    assert (changed - base).abs().amax(dim=(1, 2)).min() > 1e-4  # every row reads its cache


def test_expert_ignores_cache_positions_marked_padding(model, prefix_and_valid):
    prefix, valid = prefix_and_valid
    base = _velocity(model, prefix)
    torch.testing.assert_close(_velocity(model, _perturbed(prefix, ~valid, seed=8)), base, atol=1e-6, rtol=0)


def _teacher_forced_batch(model, prompt, obs, mode: str, **labels) -> TeacherForcedBatch:
    preset = model.preset
    builder = TargetBuilder(model.tokenizer, model.prompts.ids, mode, preset.max_reasoning_tokens, True,
                            preset.latent_blocks, preset.proposal_tokens)  # fmt: skip
    rng = np.random.default_rng(9)
    actions = normalise(np.stack([rng.normal(0.0, [0.5, 0.01], (64, 2)) for _ in obs]).astype(np.float32))
    targets = [
        builder.build({"decision": i % 3, "factors": np.eye(len(FACTORS), dtype=bool)[i], **labels}, a, 8.0)
        for i, a in enumerate(actions)
    ]
    return TeacherForcedBatch(
        prompt=prompt,
        target_ids=torch.from_numpy(np.stack([t.ids for t in targets])),
        target_categories=torch.from_numpy(np.stack([t.categories for t in targets])).long(),
        target_actions=torch.from_numpy(actions),
    )


def _losses(model, batch, ids):
    with torch.no_grad():
        return teacher_forced_losses(model, batch, ids.traj_future_start, torch.Generator().manual_seed(10))


def test_flow_loss_ignores_tokens_after_traj_future_start(model, ids, prompt, obs):
    batch = _teacher_forced_batch(model, prompt, obs, "coc")
    base = _losses(model, batch, ids)
    after = torch.zeros_like(batch.target_ids, dtype=torch.bool)
    for row, target in enumerate(batch.target_ids):
        after[row, int((target == ids.traj_future_start).nonzero()[0]) + 1 :] = True
    trajectory = batch.target_categories == TRAJECTORY
    assert (after & trajectory).sum() == B * 129  # 128 codes and <|traj_future_end|>
    changed = batch.target_ids.clone()
    # other trajectory codes (and end token), and the pads between the stop token and them become text
    changed[after & trajectory] = ids.traj_start + (changed[after & trajectory] - ids.traj_start + 1234) % FUTURE_BINS
    changed[after & (batch.target_categories == IGNORE)] = 42
    perturbed = _losses(model, TeacherForcedBatch(**{**batch.__dict__, "target_ids": changed}), ids)
    assert perturbed["ce_trajectory"] != base["ce_trajectory"]  # the backbone did read the new tokens
    torch.testing.assert_close(perturbed["flow"], base["flow"], atol=1e-6, rtol=0)
    # while the reasoning before the stop token does condition the plan
    before = batch.target_ids.clone()
    before[:, 3] = before[:, 3] + 1
    assert _losses(model, TeacherForcedBatch(**{**batch.__dict__, "target_ids": before}), ids)["flow"] != base["flow"]


@pytest.mark.parametrize("trains_backbone", [False, True])
def test_the_flow_loss_reaches_the_backbone_only_when_asked(model, ids, prompt, obs, trains_backbone):
    batch = _teacher_forced_batch(model, prompt, obs, "coc")
    model.zero_grad(set_to_none=True)
    flow = teacher_forced_losses(model, batch, ids.traj_future_start, torch.Generator().manual_seed(10), trains_backbone)
    flow["flow"].backward()
    expert = [p.grad for p in model.expert.parameters()]
    vision = [p.grad for p in model.vlm.model.visual.parameters()]
    assert all(g is not None for g in expert) and any(g.abs().sum() > 0 for g in expert)
    if trains_backbone:
        assert any(g is not None and g.abs().sum() > 0 for g in vision)
    else:
        assert all(g is None for g in vision)
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("mode", ["coc", "lcdrive"])
def test_teacher_forced_prefix_is_the_decoded_one(model, ids, prompt, mode, monkeypatch):
    """Training's expert prefix over a decoded reasoning equals the one decoding built:
    same positions, same readable cache, same velocity."""
    with torch.inference_mode():
        reasoning, decoded = reason(model, ids, prompt, mode, 1, Sampling(greedy=True))
    opening = torch.tensor(opening_tokens(mode, ids)).expand(B, -1)
    alive = torch.arange(reasoning.tokens.shape[1])[None, :] < reasoning.lengths[:, None]
    categories = torch.where(alive, STRUCTURE, IGNORE)
    categories = torch.where(reasoning.tokens == ids.vectorized_wm, LATENT, categories)
    batch = TeacherForcedBatch(
        prompt=prompt,
        target_ids=torch.cat([opening, reasoning.tokens], 1),
        target_categories=torch.cat([torch.full((B, 1), STRUCTURE), categories], 1),
        target_actions=torch.zeros(B, 64, 2),
        latent_targets=None if reasoning.latents is None else reasoning.latents.clone(),
    )
    seen = {}
    expert_output = model.expert_output

    def spy(x, t, prefix):
        seen["prefix"] = prefix
        return expert_output(x, t, prefix)

    monkeypatch.setattr(model, "expert_output", spy)
    _losses(model, batch, ids)
    trained = seen["prefix"]
    torch.testing.assert_close(trained.action_positions, decoded.action_positions, atol=0, rtol=0)
    torch.testing.assert_close(trained.attention_mask, decoded.attention_mask, atol=0, rtol=0)
    torch.testing.assert_close(_velocity(model, trained), _velocity(model, decoded), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["none", "coc", "lcdrive"])
def test_trajectory_tokens_are_decoded_where_training_puts_them(model, ids, prompt, mode):
    """The codes the backbone decodes after its reasoning are scored by the teacher-forced
    pass over that reasoning + codes exactly as decoding drew them: same greedy choices,
    same log-probabilities, so training on the layout trains what acting decodes."""
    for sampling in (Sampling(greedy=True), Sampling(temperature=0.8, top_p=0.9)):
        with torch.inference_mode():
            reasoning, plan = reason(model, ids, prompt, mode, 1, sampling, torch.Generator().manual_seed(3), trajectory=True)
        n = reasoning.tokens.shape[0]
        assert plan.codes.shape == (n, 128) and ((plan.codes >= 0) & (plan.codes < FUTURE_BINS)).all()
        np.testing.assert_array_equal(plan.actions.numpy(), decode_future(plan.codes.numpy()))
        width = 1 + reasoning.tokens.shape[1] + 128
        target_ids = torch.full((n, width), ids.endoftext)
        categories = torch.full((n, width), IGNORE)
        for row in range(n):
            said = opening_tokens(mode, ids) + reasoning.tokens[row, : reasoning.lengths[row]].tolist()
            target_ids[row, : len(said) + 128] = torch.tensor(said + (plan.codes[row] + ids.traj_start).tolist())
            categories[row, : len(said)] = torch.tensor([LATENT if t == ids.vectorized_wm else STRUCTURE for t in said])
            categories[row, len(said) : len(said) + 128] = TRAJECTORY
        batch = TeacherForcedBatch(
            prompt=prompt,
            target_ids=target_ids,
            target_categories=categories,
            target_actions=torch.zeros(n, 64, 2),
            latent_targets=None if reasoning.latents is None else reasoning.latents.clone(),
        )
        with torch.inference_mode():
            forced = teacher_forced_pass(model, batch)
        at_codes = categories == TRAJECTORY
        logits = model.logits(forced.predicting[at_codes]).float()
        masked = logits.masked_fill(~future_codes(ids, logits.shape[-1]), float("-inf"))
        if sampling.greedy:
            torch.testing.assert_close(masked.argmax(-1).reshape(n, 128) - ids.traj_start, plan.codes, atol=0, rtol=0)
        else:
            scored = sampling_log_probs(masked, sampling).gather(-1, target_ids[at_codes][:, None])[:, 0]
            torch.testing.assert_close(scored.reshape(n, 128).sum(1), plan.log_probs, atol=2e-3, rtol=1e-4)


def test_the_policy_plans_from_trajectory_tokens_when_configured(model, obs):
    cfg = PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc", plan="trajectory_tokens")
    out = AlpamayoPolicy(model, model.tokenizer, cfg, seed=4).act(obs, num_samples=2)
    codes = encode_future(normalise(out.actions))  # the bins' centres, clipped to bounds inside their bins
    np.testing.assert_allclose(denormalise(decode_future(codes)), out.actions, atol=1e-4)
    assert (out.extras["flow_log_probs"] < 0).all()  # 128 sampled tokens' log-probs, no flow chain


# --- determinism and weights ------------------------------------------------------------


def test_greedy_act_is_deterministic_and_its_samples_agree(model, obs):
    policy = AlpamayoPolicy(model, model.tokenizer, config("coc"))
    first, second = policy.act(obs, num_samples=2, greedy=True), policy.act(obs, num_samples=2, greedy=True)
    np.testing.assert_array_equal(first.actions, second.actions)
    np.testing.assert_array_equal(first.extras["reasoning_ids"], second.extras["reasoning_ids"])
    np.testing.assert_array_equal(first.actions[:, 0], first.actions[:, 1])
    assert (first.log_probs == 0).all()  # nothing was drawn


@pytest.mark.parametrize("mode", ["cfvla", "lcdrive"])
def test_same_seed_same_samples(model, obs, mode):
    a = AlpamayoPolicy(model, model.tokenizer, config(mode), seed=11).act(obs, num_samples=2)
    b = AlpamayoPolicy(model, model.tokenizer, config(mode), seed=11).act(obs, num_samples=2)
    c = AlpamayoPolicy(model, model.tokenizer, config(mode), seed=12).act(obs, num_samples=2)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.log_probs, b.log_probs)
    np.testing.assert_array_equal(a.extras["reasoning_ids"], b.extras["reasoning_ids"])
    assert not np.allclose(a.actions, c.actions)
    assert not np.allclose(a.actions[:, 0], a.actions[:, 1])  # the K samples differ


def test_save_and_load_gives_identical_outputs(model, obs, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    fresh = new_model(seed=99, mode="coc")
    mine = AlpamayoPolicy(model, model.tokenizer, config("coc"))
    theirs = AlpamayoPolicy(fresh, fresh.tokenizer, config("coc"))
    before = theirs.act(obs, greedy=True)
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    expected, loaded = mine.act(obs, greedy=True), theirs.act(obs, greedy=True)
    assert not np.allclose(before.actions, expected.actions)
    np.testing.assert_array_equal(loaded.actions, expected.actions)
    np.testing.assert_array_equal(loaded.extras["reasoning_ids"], expected.extras["reasoning_ids"])
    assert loaded.reasoning == expected.reasoning


# --- behaviour cloning ------------------------------------------------------------------


def test_a_few_bc_steps_on_one_batch_lower_the_loss():
    from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator

    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor = "minisim", list(PRESET.cameras), 2
    cfg.policy.kind, cfg.policy.preset, cfg.policy.reasoning = "alpamayo", "tiny", "coc"
    cfg.actors.generator, cfg.learner.objective = "expert", "vla"
    torch.manual_seed(0)
    generator = BehaviourCloningGenerator(cfg, actor_id=0)
    records, _ = generator.generate(4)
    objective = make_objective(LearnerConfig(objective="vla"))
    batch = collate(records, objective.batch_keys)
    assert batch["target_ids"].shape == (2 * 4, 1 + generator.policy.model.preset.max_reasoning_tokens)

    network = generator.policy.model.train()
    optimiser = torch.optim.AdamW(network.parameters(), lr=3e-3)

    def evaluate() -> dict[str, float]:  # the same flow noise and times for every evaluation
        torch.manual_seed(123)
        with torch.no_grad():
            return objective(network, batch)[1]

    first = evaluate()
    for _ in range(20):
        loss, _ = objective(network, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    last = evaluate()
    assert last["loss"] < 0.7 * first["loss"], (first, last)
    for part in ("flow", "ce_coc", "ce_structure"):
        assert last[part] < first[part], (part, first, last)


# --- the expert plans in its own units ------------------------------------------------------


def _still_expert(seed: int = 0):
    """A model in minisim units whose expert's velocity is zero everywhere: its plans are the origin of its units."""
    torch.manual_seed(seed)
    still = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny", plan_units="minisim")).eval()
    with torch.no_grad():
        still.action_out_proj.weight.zero_()
        still.action_out_proj.bias.zero_()
    return still


def test_the_configured_plan_units_are_buffers_of_the_weights(model):
    from redux.policy.alpamayo.plan_units import MINISIM_STATS, read_stats

    shift, scale = read_stats(MINISIM_STATS)
    minisim = _still_expert()
    assert minisim.plan_units.units == "minisim" and model.plan_units.units == "published"
    np.testing.assert_array_equal(minisim.plan_units.shift.numpy(), shift)
    np.testing.assert_array_equal(minisim.plan_units.scale.numpy(), scale)
    assert "plan_units.shift" in model.state_dict() and "plan_units.scale" in model.state_dict()
    # a checkpoint keeps its units: loading minisim weights into a published-units model takes them
    published = new_model(1)
    published.load_state_dict(minisim.state_dict())
    np.testing.assert_array_equal(published.plan_units.scale.numpy(), scale)


def test_the_policy_maps_its_plans_out_of_the_expert_units(obs):
    from redux.policy.action_space import clip_to_bounds, denormalise

    still = _still_expert()
    out = AlpamayoPolicy(still, still.tokenizer, config("none")).act(obs, greedy=True)
    origin = clip_to_bounds(denormalise(still.plan_units.shift.numpy()))
    assert np.abs(still.plan_units.shift.numpy()).max() > 0.05  # the check below would pass for the identity
    np.testing.assert_allclose(out.actions, np.broadcast_to(origin, out.actions.shape), atol=1e-5)


def test_the_flow_loss_is_scored_in_the_expert_units(prompt, obs):
    still = _still_expert()
    ids = still.prompts.ids
    batch = _teacher_forced_batch(still, prompt, obs, "coc")
    flow = _losses(still, batch, ids)["flow"]
    noise = torch.randn(batch.target_actions.shape, generator=torch.Generator().manual_seed(10))
    in_units = (batch.target_actions - still.plan_units.shift) / still.plan_units.scale
    torch.testing.assert_close(flow, ((in_units - noise) ** 2).mean())
    assert not torch.allclose(flow, ((batch.target_actions - noise) ** 2).mean(), rtol=1e-3)


def test_a_data_predicting_expert_plans_its_prediction_from_any_noise(prefix_and_valid):
    """With flow_prediction=data the expert's output is the plan: a constant output is where
    Euler lands from any start, while the same output read as a velocity only shifts the start."""
    prefix, _ = prefix_and_valid
    constant = torch.tensor([0.7, -0.4])
    landed = {}
    for kind in ("data", "velocity"):
        torch.manual_seed(0)
        expert = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny", flow_prediction=kind)).eval()
        with torch.no_grad():
            expert.action_out_proj.weight.zero_()
            expert.action_out_proj.bias.copy_(constant)
        start = 3.0 * torch.randn(B, 64, 2, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            landed[kind] = euler_sample(lambda x, t: expert.velocity(x, t, prefix), start, 5)
    torch.testing.assert_close(landed["data"], constant.expand(B, 64, 2), rtol=0, atol=1e-5)
    torch.testing.assert_close(landed["velocity"], start + constant, rtol=0, atol=1e-5)


def test_a_data_predicting_expert_is_scored_on_the_plan(prompt, obs):
    torch.manual_seed(0)
    still = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny", flow_prediction="data")).eval()
    with torch.no_grad():
        still.action_out_proj.weight.zero_()
        still.action_out_proj.bias.zero_()
    batch = _teacher_forced_batch(still, prompt, obs, "coc")
    flow = _losses(still, batch, still.prompts.ids)["flow"]
    torch.testing.assert_close(flow, (batch.target_actions**2).mean())  # the prediction is 0, whatever the noise
    with pytest.raises(ValueError, match="flow_prediction"):
        AlpamayoR1(still.preset, still.ids, flow_prediction="score")


def test_several_flow_samples_are_each_decision_repeated(model, ids, prompt, obs):
    """K noise draws on one backbone pass score exactly what K copies of each decision would."""
    k = 2
    batch = _teacher_forced_batch(model, prompt, obs, "coc")
    copies = [o for o in obs for _ in range(k)]
    inputs = AlpamayoPolicy(model, model.tokenizer, config("none")).model_inputs(copies)
    repeated = TeacherForcedBatch(
        prompt=model.prompts.build(inputs["frames"], inputs["ego_history"]),
        target_ids=batch.target_ids.repeat_interleave(k, 0),
        target_categories=batch.target_categories.repeat_interleave(k, 0),
        target_actions=batch.target_actions.repeat_interleave(k, 0),
    )
    with torch.no_grad():
        drawn = teacher_forced_losses(model, batch, ids.traj_future_start, torch.Generator().manual_seed(3), flow_samples=k)
        copied = teacher_forced_losses(model, repeated, ids.traj_future_start, torch.Generator().manual_seed(3))
        single = teacher_forced_losses(model, batch, ids.traj_future_start, torch.Generator().manual_seed(3))
    torch.testing.assert_close(drawn["flow"], copied["flow"], atol=1e-5, rtol=1e-5)
    assert not torch.isclose(drawn["flow"], single["flow"])


def test_history_dropout_trains_those_decisions_on_the_straightened_history():
    from redux.learner.objectives.vla import with_history_dropped
    from redux.policy.ego_history import straightened_history

    rng = np.random.default_rng(0)
    history = torch.from_numpy(rng.normal(0.0, 1.0, (64, 16, 3)).astype(np.float32))
    batch = {"ego_history": history, "frames": torch.zeros(64, 1)}
    assert with_history_dropped(batch, 0.0, np.random.default_rng(1)) is batch
    dropped = with_history_dropped(batch, 0.5, np.random.default_rng(1))["ego_history"].numpy()
    straight = np.stack([straightened_history(h) for h in history.numpy()])
    is_straight = np.array([np.allclose(d, s, atol=1e-6) for d, s in zip(dropped, straight)])
    kept = np.array([np.array_equal(d, h) for d, h in zip(dropped, history.numpy())])
    assert (is_straight ^ kept).all() and 16 < is_straight.sum() < 48  # each row one or the other, about half
    assert np.array_equal(batch["ego_history"].numpy(), history.numpy())  # the records' tensors are untouched
    assert with_history_dropped(batch, 1.0, np.random.default_rng(1))["ego_history"].numpy() == pytest.approx(straight)
