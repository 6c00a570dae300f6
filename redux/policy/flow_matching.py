"""Flow matching for the action head, in Alpamayo-R1's conventions.

The path runs from noise at t = 0 to data at t = 1: x_t = t·x + (1 − t)·ε, whose
velocity is v = x − ε. Training draws t = 0.999·(1 − Beta(1.5, 1)), which puts
more weight on the noisy end; inference integrates the learned velocity with
Euler steps on a uniform grid. For GRPO the same velocity drives an SDE with
the same marginals, so every step is Gaussian and a plan has a log-probability.

Actions here are the normalised (…, 64, 2) controls of
:mod:`redux.policy.action_space`; nothing in this module depends on that shape
beyond broadcasting t over the non-batch dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

# x_t (B, 64, 2), t (B,) → velocity (B, 64, 2)
VelocityFn = Callable[[Tensor, Tensor], Tensor]

T_MAX = 0.999
BETA_ALPHA = 1.5


def sample_training_time(n: int, generator: torch.Generator | None = None) -> Tensor:
    """n flow times 0.999·(1 − Beta(1.5, 1)) in (0, 0.999].

    Beta(a, 1) has CDF u^a, so u^(1/a) with u uniform is an exact draw; unlike
    torch.distributions.Beta this honours ``generator``.
    """
    device = generator.device if generator is not None else None
    u = torch.rand(n, generator=generator, device=device)
    return T_MAX * (1.0 - u ** (1.0 / BETA_ALPHA))


def _broadcast_time(t: Tensor | float, like: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(t.shape + (1,) * (like.dim() - t.dim()))


def noisy_actions(x: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
    """x_t = t·x + (1 − t)·ε, with t of shape (B,) or a scalar."""
    t = _broadcast_time(t, x)
    return t * x + (1.0 - t) * noise


def velocity_target(x: Tensor, noise: Tensor) -> Tensor:
    return x - noise


def velocity_from_data(predicted_data: Tensor, x_t: Tensor, t: Tensor | float) -> Tensor:
    """The velocity (x̂ − x_t) / (1 − t) implied by a prediction x̂ of the data at (x_t, t).

    On this path ε = (x_t − t·x) / (1 − t), so x − ε = (x − x_t) / (1 − t). Samplers
    stop at t ≤ 1 − 1/steps and training at T_MAX, so the floor only guards misuse.
    """
    remaining = (1.0 - _broadcast_time(t, x_t)).clamp(min=1.0 - T_MAX)
    return (predicted_data - x_t) / remaining


def data_prediction_loss(predicted_data: Tensor, x: Tensor) -> Tensor:
    """Mean squared error of the predicted data: the velocity loss weighted by (1 − t)²,
    which neither vanishes nor explodes at either end of the path."""
    return ((predicted_data - x) ** 2).mean()


def flow_matching_loss(predicted_velocity: Tensor, x: Tensor, noise: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean squared error to x − ε over all elements of the kept samples.

    ``mask`` (B,) bool drops samples (e.g. invalid labels). It weights rather
    than indexes, so there is no host sync; with nothing kept the loss is a zero
    that still belongs to the graph, so a backward pass is harmless.
    """
    squared = (predicted_velocity - velocity_target(x, noise)) ** 2
    if mask is None:
        return squared.mean()
    per_sample = squared.flatten(1).mean(dim=1)
    kept = mask.to(per_sample.dtype)
    return (per_sample * kept).sum() / kept.sum().clamp(min=1.0)


def _step_size(steps: int) -> float:
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return 1.0 / steps


def _times(x: Tensor, k: int, steps: int) -> Tensor:
    return x.new_full(x.shape[:1], k / steps)


def euler_sample(velocity_fn: VelocityFn, noise: Tensor, steps: int) -> Tensor:
    """Integrates dx/dt = v(x, t) from noise at t = 0 to t = 1 in ``steps`` equal steps."""
    dt = _step_size(steps)
    x = noise
    for k in range(steps):
        x = x + velocity_fn(x, _times(x, k, steps)) * dt
    return x


def _sde_mean(velocity_fn: VelocityFn, x: Tensor, k: int, steps: int, noise_level: float) -> Tensor:
    """Mean of the Euler–Maruyama step k of dx = [v + (σ²/2)·score] dt + σ dW.

    For this path E[ε | x_t] = x_t − t·v, so score = −(x_t − t·v)/(1 − t); adding
    the σ²/2 score drift to the noise σ dW keeps the flow's marginals. t_k = k/N
    never reaches 1, so 1 − t_k ≥ dt. At σ = 0 the drift is v and the step is Euler's.
    """
    dt = 1.0 / steps
    t = _times(x, k, steps)
    v = velocity_fn(x, t)
    tb = _broadcast_time(t, x)
    drift = v - (noise_level**2 / 2.0) * (x - tb * v) / (1.0 - tb)
    return x + drift * dt


def _gaussian_log_prob(value: Tensor, mean: Tensor, std: float) -> Tensor:
    """log N(value; mean, std² I) summed over all but the batch dimension."""
    z = (value - mean) / std
    per_dim = -0.5 * z**2 - math.log(std) - 0.5 * math.log(2.0 * math.pi)
    return per_dim.flatten(1).sum(dim=1)


@dataclass
class SdeSample:
    actions: Tensor  # (B, 64, 2): the last state of the chain
    chain: Tensor  # (B, steps + 1, 64, 2): x_0 (the noise) … x_N
    log_prob: Tensor  # (B,): Σ_k log p(x_{k+1} | x_k)


def sde_sample(
    velocity_fn: VelocityFn, noise: Tensor, steps: int, noise_level: float, generator: torch.Generator | None = None
) -> SdeSample:
    """Stochastic sampling whose steps are Gaussian, std σ·√dt with σ = ``noise_level``.

    ``log_prob`` is the density of the chain given its starting noise, the
    quantity GRPO's importance ratio needs; the starting noise itself is shared
    by old and new policies and cancels. At σ = 0 the chain is exactly
    :func:`euler_sample`'s and, a deterministic map having no density, log_prob
    is 0 by convention. Gradients flow as they do through ``velocity_fn``; wrap
    in ``torch.no_grad()`` for roll-outs.
    """
    dt = _step_size(steps)
    if noise_level < 0:
        raise ValueError(f"noise_level must be non-negative, got {noise_level}")
    std = noise_level * math.sqrt(dt)
    x = noise
    states = [x]
    log_prob = noise.new_zeros(noise.shape[0])
    for k in range(steps):
        mean = _sde_mean(velocity_fn, x, k, steps, noise_level)
        if noise_level == 0:
            x = mean
        else:
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            x = mean + std * eps
            log_prob = log_prob + _gaussian_log_prob(x, mean, std)
        states.append(x)
    return SdeSample(actions=x, chain=torch.stack(states, dim=1), log_prob=log_prob)


def sde_log_prob(velocity_fn: VelocityFn, chain: Tensor, steps: int, noise_level: float) -> Tensor:
    """log-probability (B,) of a stored ``chain`` (B, steps + 1, …) under ``velocity_fn``.

    The chain is data (detached); gradients reach only velocity_fn's parameters,
    which is what the GRPO ratio exp(new − old) needs. σ must be positive: at
    σ = 0 the zero of :func:`sde_sample` is a convention with no gradient, and a
    learner that asked for it would silently learn nothing.
    """
    dt = _step_size(steps)
    if noise_level <= 0:
        raise ValueError(f"noise_level must be positive for a log-probability, got {noise_level}")
    if chain.shape[1] != steps + 1:
        raise ValueError(f"chain holds {chain.shape[1]} states, expected steps + 1 = {steps + 1}")
    chain = chain.detach()
    std = noise_level * math.sqrt(dt)
    # step by step, not folded into one call: velocity_fn may close over per-sample context of batch size B
    log_prob = chain.new_zeros(chain.shape[0])
    for k in range(steps):
        mean = _sde_mean(velocity_fn, chain[:, k], k, steps, noise_level)
        log_prob = log_prob + _gaussian_log_prob(chain[:, k + 1], mean, std)
    return log_prob
