"""Driving policies: models, their action space, and the engines that run them."""

from torch import nn

from redux.config import PolicyConfig, SimConfig


def build_model(policy: PolicyConfig, sim: SimConfig, device: str = "cpu") -> nn.Module:
    """The trainable network named by ``policy.kind``, made on ``device``, with ``policy.init_from``'s
    weights if set."""
    model = _build(policy, sim, device)
    if policy.init_from is not None:
        from redux.policy.loading import load_initial_weights

        load_initial_weights(model, policy.init_from)
    return model


def _build(policy: PolicyConfig, sim: SimConfig, device: str) -> nn.Module:
    if policy.kind == "bev-planner":
        from redux.policy.bev_planner import BevPlanner

        return BevPlanner(policy, sim).to(device)
    if policy.kind == "alpamayo":
        from redux.policy.alpamayo.factory import build_alpamayo

        return build_alpamayo(policy, device)
    raise ValueError(f"unknown policy kind {policy.kind!r}")
