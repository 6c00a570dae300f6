"""Where and in what precision the acting replica runs (policy.device / policy.dtype), and the
real presets on random weights with the embedded tokenizer (what the GPU latency bench uses).

CUDA is not on this machine: the device path is exercised on cpu here and was measured on
an H100 (docs/benchmarks.md); bfloat16 runs on both."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from redux.bench.policy import synthetic_observations
from redux.config import PolicyConfig, SimConfig
from redux.policy.alpamayo.factory import EMBEDDED_TOKENIZER, build_alpamayo, tokenizer_for, vocabulary_ids
from redux.policy.alpamayo.info import parameter_counts
from redux.policy.alpamayo.model import AlpamayoR1
from redux.policy.alpamayo.policy import AlpamayoPolicy
from redux.policy.alpamayo.presets import get_preset
from redux.policy.alpamayo.reasoning import MODES, Sampling, reason
from redux.policy.torch_engine import cast_parameters, make_policy_replica

CONSTANT_BUFFERS = ("freqs", "accel_mean", "accel_std", "curvature_mean", "curvature_std")


def replica(mode: str, dtype: str = "float32", preset: str = "tiny"):
    """A replica on one torch thread (policy.torch_threads' default), as actors run them."""
    cfg = PolicyConfig(kind="alpamayo", preset=preset, reasoning=mode, dtype=dtype)
    return make_policy_replica(cfg, SimConfig(), seed=0)


@pytest.mark.parametrize("mode", MODES)
def test_a_bfloat16_replica_acts_in_every_mode_and_plans_like_float32(mode):
    obs = synthetic_observations(get_preset("tiny"), 2, seed=1)
    full, half = replica(mode), replica(mode, "bfloat16")
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    greedy_full, greedy_half = full.act(obs, greedy=True), half.act(obs, greedy=True)
    sampled = half.act(obs, num_samples=3)
    assert sampled.actions.shape == (2, 3, 64, 2) and sampled.actions.dtype == np.float32
    assert np.isfinite(sampled.actions).all() and np.isfinite(sampled.log_probs).all()
    assert (greedy_half.extras["reasoning_lengths"] == greedy_full.extras["reasoning_lengths"]).all()


def test_a_bfloat16_velocity_is_the_float32_one_up_to_rounding():
    """One flow step on the same inputs. Whole plans are not compared: a random expert's
    field changes fast with the noisy actions (Fourier features up to 100 cycles per unit),
    so a 1 % difference in one step grows to the plan's own size over ten."""
    obs = synthetic_observations(get_preset("tiny"), 2, seed=1)
    velocities = []
    for dtype in ("float32", "bfloat16"):
        policy = replica("none", dtype)
        inputs = policy.model_inputs(obs)
        with torch.inference_mode():
            prompt = policy.prompts.build(inputs["frames"], inputs["ego_history"])
            prefix = reason(policy.model, policy.ids, prompt, "none", 1, Sampling(greedy=True))[1]
            x, t = torch.linspace(-1, 1, 2 * 64 * 2).reshape(2, 64, 2), torch.tensor([0.3, 0.7])
            velocities.append(policy.model.velocity(x, t, prefix))
    full, half = velocities
    assert half.dtype == torch.float32
    assert float((half - full).norm() / full.norm()) < 0.05  # measured 0.01


def test_casting_keeps_constants_in_float32_and_tied_weights_tied():
    model = build_alpamayo(PolicyConfig(kind="alpamayo", preset="student"))
    assert get_preset("student").tie_embeddings
    cast_parameters(model, torch.bfloat16)
    assert model.vlm.lm_head.weight is model.vlm.get_input_embeddings().weight
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    constants = {n: b for n, b in model.named_buffers() if n.endswith(CONSTANT_BUFFERS)}
    assert len(constants) == 7 and all(b.dtype == torch.float32 for b in constants.values())


def test_the_network_is_made_on_the_device_it_is_asked_for():
    model = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny"), device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def test_a_real_preset_on_the_embedded_tokenizer_keeps_its_published_shapes():
    cfg = PolicyConfig(kind="alpamayo", preset="alpamayo-r1-10b", tokenizer=EMBEDDED_TOKENIZER)
    model = build_alpamayo(cfg, device="meta")
    assert model.ids.vocab_size == get_preset("alpamayo-r1-10b").vocab_size > len(model.tokenizer)
    assert sum(p.numel() for p in model.parameters()) == parameter_counts("alpamayo-r1-10b")["total"]
    # 4 cameras x 4 frames of 180 vision tokens, 48 history tokens and the chat text: "≈3 k" published
    assert 16 * 180 + 48 < model.prompts.length < 3200


def test_the_embedded_tokenizer_is_refused_with_published_weights_and_named_when_missing():
    with pytest.raises(ValueError, match="published weights would read other tokens"):
        tokenizer_for(PolicyConfig(kind="alpamayo", preset="alpamayo-r1-10b", tokenizer="embedded", checkpoint="/x"))
    with pytest.raises(ValueError, match="'embedded'"):
        tokenizer_for(PolicyConfig(kind="alpamayo", preset="alpamayo-r1-10b"))


def test_rows_beyond_the_tokenizer_are_never_decoded():
    """A real preset's network has more rows than the embedded tokenizer has tokens; even
    when those rows score highest, decoding keeps to the tokenizer's."""
    cfg = PolicyConfig(kind="alpamayo", preset="tiny", reasoning="coc")
    tokenizer = tokenizer_for(cfg)
    ids = vocabulary_ids(tokenizer)
    extra = 50
    torch.manual_seed(0)
    model = AlpamayoR1(get_preset("tiny"), type(ids)(**{**ids.__dict__, "vocab_size": ids.vocab_size + extra})).eval()
    model.tokenizer = tokenizer
    boost = torch.zeros(ids.vocab_size + extra)
    boost[-extra:] = 100.0
    model.logits = lambda hidden: AlpamayoR1.logits(model, hidden) + boost
    obs = synthetic_observations(get_preset("tiny"), 2)
    for greedy in (True, False):
        out = AlpamayoPolicy(model, tokenizer, cfg).act(obs, num_samples=2, greedy=greedy)
        assert out.extras["reasoning_ids"].max() < len(tokenizer)
        assert np.isfinite(out.log_probs).all()


@pytest.mark.parametrize(
    "fields", [dict(kind="bev-planner", dtype="bfloat16"), dict(kind="alpamayo", engine="vllm", device="cuda")]
)
def test_placement_is_refused_where_the_torch_alpamayo_network_is_not_what_runs(fields):
    with pytest.raises(ValidationError, match="policy.device and policy.dtype"):
        PolicyConfig(**fields)
