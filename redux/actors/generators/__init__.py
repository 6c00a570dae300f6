"""Rollout generators: what an actor does with its sessions and policy, by name."""

from redux.config import RunConfig


def make_generator(cfg: RunConfig, actor_id: int, policy=None):
    """``policy``: one the actor was given (shared replicas behind a router); None builds a replica in-process."""
    if cfg.actors.generator in ("bc", "expert"):  # expert: the same generator, the expert drives
        from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator

        return BehaviourCloningGenerator(cfg, actor_id, policy)
    if cfg.actors.generator == "alpasim":  # daemon mode: a runtime's RuntimeService.simulate drives our server
        from redux.actors.generators.alpasim_daemon import AlpasimDaemonGenerator

        return AlpasimDaemonGenerator(cfg, actor_id, policy)
    raise ValueError(f"unknown generator {cfg.actors.generator!r}")
