"""Driving policies: models, their action space, and the engines that run them."""

from torch import nn

from redux.config import PolicyConfig, SimConfig


def build_model(policy: PolicyConfig, sim: SimConfig) -> nn.Module:
    """The trainable network named by ``policy.kind``, with ``policy.init_from``'s weights if set."""
    model = _build(policy, sim)
    if policy.init_from is not None:
        from redux.policy.loading import load_initial_weights

        load_initial_weights(model, policy.init_from)
    return model


def _build(policy: PolicyConfig, sim: SimConfig) -> nn.Module:
    if policy.kind == "bev-planner":
        from redux.policy.bev_planner import BevPlanner

        return BevPlanner(policy, sim)
    if policy.kind == "alpamayo":
        from redux.policy.alpamayo.factory import build_alpamayo

        return build_alpamayo(policy)
    raise ValueError(f"unknown policy kind {policy.kind!r}")
