"""Driving policies: models, their action space, and the engines that run them."""

from torch import nn

from redux.config import PolicyConfig, SimConfig


def build_model(policy: PolicyConfig, sim: SimConfig) -> nn.Module:
    """The trainable network named by ``policy.kind``."""
    if policy.kind == "bev-planner":
        from redux.policy.bev_planner import BevPlanner

        return BevPlanner(policy, sim)
    if policy.kind == "alpamayo":
        from redux.policy.alpamayo.factory import build_alpamayo

        return build_alpamayo(policy)
    raise ValueError(f"unknown policy kind {policy.kind!r}")
