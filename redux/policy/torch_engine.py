"""The in-process torch engine: batched acting with Gaussian plan sampling.

Samples are drawn around the network's mean plan in normalised action space;
their log-probabilities are exact under that Gaussian, which is what a
policy-gradient objective needs.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from redux.config import PolicyConfig, SimConfig
from redux.policy import build_model
from redux.policy.action_space import clip_to_bounds, denormalise, estimate_speed, integrate
from redux.policy.inputs import model_inputs
from redux.policy.interface import PolicyOutput
from redux.sim_bridge.session import Observation


class TorchPolicy:
    def __init__(self, policy: PolicyConfig, sim: SimConfig, seed: int = 0):
        torch.set_num_threads(policy.torch_threads)
        torch.manual_seed(seed)
        self.cfg = policy
        self.model = build_model(policy, sim).eval()
        self.weight_version = 0
        self._generator = torch.Generator().manual_seed(seed)

    def model_inputs(self, observations: list[Observation]) -> dict[str, np.ndarray]:
        return model_inputs(observations)

    def act(self, observations: list[Observation], num_samples: int = 1, greedy: bool = False) -> PolicyOutput:
        start = time.perf_counter()
        inputs = {k: torch.from_numpy(v) for k, v in model_inputs(observations).items()}
        with torch.inference_mode():
            mean = self.model(**inputs)
        forward_ms = (time.perf_counter() - start) * 1e3

        batch, std = mean.shape[0], self.cfg.sample_std
        shape = (batch, num_samples) + tuple(mean.shape[1:])
        if greedy or std == 0.0:
            noise = torch.zeros(shape)
        else:
            noise = torch.randn(shape, generator=self._generator) * std
        samples = (mean[:, None] + noise).numpy()
        log_probs = gaussian_log_prob(noise.numpy(), std).astype(np.float32)

        actions = clip_to_bounds(denormalise(samples))
        speed = estimate_speed(inputs["ego_history"].numpy()[..., :2])
        poses = integrate(actions, speed[:, None])
        total_ms = (time.perf_counter() - start) * 1e3
        return PolicyOutput(actions, poses, log_probs, self.weight_version, {"forward_ms": forward_ms, "total_ms": total_ms})

    def load_weights(self, named: dict[str, torch.Tensor], version: int) -> None:
        self.model.load_state_dict(named, strict=True)
        self.weight_version = version

    def named_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def gaussian_log_prob(noise: np.ndarray, std: float) -> np.ndarray:
    """log N(noise; 0, std²) summed over the plan; 0 for a deterministic policy."""
    if std == 0.0:
        return np.zeros(noise.shape[:2])
    flat = noise.reshape(noise.shape[0], noise.shape[1], -1)
    dims = flat.shape[-1]
    return -0.5 * np.sum((flat / std) ** 2, axis=-1) - dims * math.log(std * math.sqrt(2 * math.pi))


def make_policy_replica(policy: PolicyConfig, sim: SimConfig, seed: int = 0):
    """The in-process replica of ``policy.kind`` on ``policy.engine``: the BEV planner, or the
    Alpamayo network decoding in torch or through an in-process vLLM engine."""
    if policy.engine == "vllm" and policy.kind != "alpamayo":
        raise ValueError("policy.engine=vllm serves the alpamayo policy's reasoning; the bev-planner has none")
    if policy.kind == "alpamayo":
        from redux.policy.alpamayo.policy import AlpamayoPolicy

        torch.set_num_threads(policy.torch_threads)
        torch.manual_seed(seed)
        model = build_model(policy, sim, policy.device)
        cast_parameters(model, getattr(torch, policy.dtype))
        if policy.engine == "vllm":
            from redux.policy.vllm.policy import VllmAlpamayoPolicy

            return VllmAlpamayoPolicy(model, model.tokenizer, policy, seed=seed)
        return AlpamayoPolicy(model, model.tokenizer, policy, seed=seed)
    return TorchPolicy(policy, sim, seed=seed)


def cast_parameters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Floating-point parameters to ``dtype``; buffers stay as they are, since the action-space
    statistics and Fourier frequencies are constants whose rounding would shift every plan."""
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)
