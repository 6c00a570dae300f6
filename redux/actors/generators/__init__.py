"""Rollout generators: what an actor does with its sessions and policy, by name."""

from redux.config import RunConfig


def make_generator(cfg: RunConfig, actor_id: int, policy=None, first_episode: int = 0):
    """``policy``: one the actor was given (shared replicas behind a router); None builds a replica in-process.
    ``first_episode``: the episode each session's scene order starts at (a resumed run goes on from there)."""
    if cfg.actors.generator in ("bc", "expert"):  # expert: the same generator, the expert drives
        from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator

        return BehaviourCloningGenerator(cfg, actor_id, policy, first_episode)
    if cfg.actors.generator == "alpasim":  # daemon mode: a runtime's RuntimeService.simulate drives our server
        from redux.actors.generators.alpasim_daemon import AlpasimDaemonGenerator

        return AlpasimDaemonGenerator(cfg, actor_id, policy, first_episode=first_episode)
    raise ValueError(f"unknown generator {cfg.actors.generator!r}")
