"""Rollout generators: what an actor does with its sessions and policy, by name."""

from redux.config import RunConfig


def make_generator(cfg: RunConfig, actor_id: int):
    if cfg.actors.generator in ("bc", "expert"):  # expert: the same generator, the expert drives
        from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator

        return BehaviourCloningGenerator(cfg, actor_id)
    raise ValueError(f"unknown generator {cfg.actors.generator!r}")
