import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.policy import flow_matching as F


def _linear_field(weight: torch.Tensor):
    # v depends on x and t, so the SDE drift and Euler steps are non-trivial
    return lambda x, t: x @ weight + t[:, None, None]


@pytest.fixture
def weight():
    return torch.tensor([[0.3, -0.2], [0.1, 0.5]], requires_grad=True)


def test_training_time_is_the_published_beta():
    t = F.sample_training_time(20_000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (20_000,)
    assert t.min() >= 0.0 and t.max() <= 0.999
    # 1 − Beta(1.5, 1) has mean 0.4 and std ≈ 0.256; 5σ of the mean of 20k draws
    assert abs(t.mean().item() - 0.999 * 0.4) < 5 * 0.256 / math.sqrt(20_000)
    # Beta(1.5, 1) has CDF u^1.5: P(1 − B ≤ 0.5) = 1 − 0.5^1.5
    assert abs((t <= 0.999 * 0.5).float().mean().item() - (1 - 0.5**1.5)) < 0.015


def test_training_time_follows_the_generator():
    a = F.sample_training_time(100, generator=torch.Generator().manual_seed(7))
    b = F.sample_training_time(100, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_noisy_actions_run_from_noise_to_data():
    x, noise = torch.randn(3, 64, 2), torch.randn(3, 64, 2)
    assert torch.equal(F.noisy_actions(x, noise, torch.zeros(3)), noise)
    assert torch.equal(F.noisy_actions(x, noise, torch.ones(3)), x)
    t = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(F.noisy_actions(x, noise, t)[1], 0.5 * (x[1] + noise[1]))
    assert torch.equal(F.velocity_target(x, noise), x - noise)


def test_loss_is_zero_at_the_target_and_respects_the_mask():
    x, noise = torch.randn(4, 64, 2), torch.randn(4, 64, 2)
    assert F.flow_matching_loss(x - noise, x, noise).item() == 0.0
    predicted = (x - noise).clone()
    predicted[0] += 1.0
    assert F.flow_matching_loss(predicted, x, noise).item() == pytest.approx(0.25)
    assert F.flow_matching_loss(predicted, x, noise, torch.tensor([False, True, True, True])).item() == 0.0
    assert F.flow_matching_loss(predicted, x, noise, torch.tensor([True, False, False, False])).item() == 1.0
    nothing = F.flow_matching_loss(predicted.requires_grad_(), x, noise, torch.zeros(4, dtype=torch.bool))
    nothing.backward()  # an all-masked batch still has a graph
    assert nothing.item() == 0.0


@pytest.mark.parametrize("steps", [1, 5, 10])
def test_euler_follows_the_straight_path_exactly(steps):
    x1, noise = torch.randn(2, 64, 2, dtype=torch.float64), torch.randn(2, 64, 2, dtype=torch.float64)
    # the true field of a single straight path is constant, so Euler has no error
    out = F.euler_sample(lambda x, t: x1 - noise, noise, steps)
    torch.testing.assert_close(out, x1, rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.floats(0.0, 0.999))
def test_the_velocity_of_the_true_data_is_the_path_velocity(seed, t):
    generator = torch.Generator().manual_seed(seed)
    x, noise = torch.randn(2, 64, 2, generator=generator, dtype=torch.float64), torch.randn(2, 64, 2, generator=generator, dtype=torch.float64)
    times = torch.full((2,), t, dtype=torch.float64)
    x_t = F.noisy_actions(x, noise, times)
    torch.testing.assert_close(F.velocity_from_data(x, x_t, times), x - noise, rtol=1e-6, atol=1e-6 / (1 - t))


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_euler_on_a_data_prediction_lands_on_its_last_prediction(steps):
    """Whatever the start, the last Euler step (t = 1 − 1/steps) moves x onto the predicted data."""
    target = torch.randn(3, 64, 2, dtype=torch.float64)
    start = 5.0 * torch.randn(3, 64, 2, dtype=torch.float64)
    out = F.euler_sample(lambda x, t: F.velocity_from_data(target, x, t), start, steps)
    torch.testing.assert_close(out, target, rtol=0, atol=1e-9)


def test_the_data_prediction_loss_is_the_velocity_loss_weighted_by_the_remaining_time():
    generator = torch.Generator().manual_seed(4)
    x, noise, guess = (torch.randn(4, 64, 2, generator=generator, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0.0, 0.3, 0.7, 0.95], dtype=torch.float64)
    x_t = F.noisy_actions(x, noise, t)
    velocity_error = (F.velocity_from_data(guess, x_t, t) - (x - noise)) ** 2
    weighted = (velocity_error * (1 - t)[:, None, None] ** 2).mean()
    torch.testing.assert_close(F.data_prediction_loss(guess, x), weighted)


def test_euler_passes_the_grid_times():
    seen = []
    F.euler_sample(lambda x, t: seen.append(t.clone()) or torch.zeros_like(x), torch.zeros(3, 64, 2), 4)
    assert [s.tolist() for s in seen] == [[k / 4] * 3 for k in range(4)]


def test_sde_log_prob_is_the_sum_of_gaussian_steps(weight):
    steps, sigma = 5, 0.2
    fn = _linear_field(weight.detach())
    sample = F.sde_sample(fn, torch.randn(3, 64, 2), steps, sigma, generator=torch.Generator().manual_seed(1))
    assert sample.chain.shape == (3, steps + 1, 64, 2)
    assert torch.equal(sample.actions, sample.chain[:, -1])
    dt = 1 / steps
    expected = torch.zeros(3)
    for k in range(steps):
        x, t = sample.chain[:, k], torch.full((3,), k / steps)
        v = fn(x, t)
        mean = x + (v - sigma**2 / 2 * (x - k / steps * v) / (1 - k / steps)) * dt
        normal = torch.distributions.Normal(mean, sigma * math.sqrt(dt))
        expected += normal.log_prob(sample.chain[:, k + 1]).sum(dim=(1, 2))
    torch.testing.assert_close(sample.log_prob, expected, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(F.sde_log_prob(fn, sample.chain, steps, sigma), sample.log_prob)


def test_sde_without_noise_is_euler(weight):
    fn = _linear_field(weight.detach())
    noise = torch.randn(2, 64, 2)
    sample = F.sde_sample(fn, noise, 10, 0.0)
    assert torch.equal(sample.actions, F.euler_sample(fn, noise, 10))
    assert torch.equal(sample.log_prob, torch.zeros(2))
    with pytest.raises(ValueError, match="positive"):
        F.sde_log_prob(fn, sample.chain, 10, 0.0)


def test_sde_with_the_exact_field_ends_at_the_data():
    # data is a single point x1: the exact velocity is (x1 − x_t)/(1 − t), and the
    # SDE must still end at x1 with the noise it adds along the way cancelled
    x1 = torch.full((1, 64, 2), 2.0, dtype=torch.float64)
    fn = lambda x, t: (x1 - x) / (1 - t[:, None, None])  # noqa: E731
    noise = torch.randn(4000, 64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    # the last step from t = 1 − dt removes the flow's noise but adds σ√dt of its own
    out = F.sde_sample(fn, noise, 5, 0.2, generator=torch.Generator().manual_seed(4)).actions
    assert abs(out.mean().item() - 2.0) < 0.01
    assert out.std().item() < 0.2 * math.sqrt(1 / 5) * 1.5


def test_gradients_reach_the_velocity_through_sde_log_prob(weight):
    with torch.no_grad():
        sample = F.sde_sample(_linear_field(weight), torch.randn(2, 64, 2), 5, 0.2)
    log_prob = F.sde_log_prob(_linear_field(weight), sample.chain, 5, 0.2)
    torch.testing.assert_close(log_prob.detach(), sample.log_prob)
    log_prob.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_sde_sampling_follows_the_generator(weight):
    fn = _linear_field(weight.detach())
    noise = torch.randn(2, 64, 2)
    a = F.sde_sample(fn, noise, 5, 0.2, generator=torch.Generator().manual_seed(9))
    b = F.sde_sample(fn, noise, 5, 0.2, generator=torch.Generator().manual_seed(9))
    c = F.sde_sample(fn, noise, 5, 0.2, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a.chain, b.chain) and torch.equal(a.log_prob, b.log_prob)
    assert not torch.equal(a.actions, c.actions)


def test_bad_arguments_are_refused(weight):
    fn = _linear_field(weight.detach())
    with pytest.raises(ValueError, match="steps"):
        F.euler_sample(fn, torch.zeros(1, 64, 2), 0)
    chain = F.sde_sample(fn, torch.zeros(1, 64, 2), 5, 0.2).chain
    with pytest.raises(ValueError, match="states"):
        F.sde_log_prob(fn, chain, 4, 0.2)
