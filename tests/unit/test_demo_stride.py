"""Recording every k-th decision of the demonstrations (actors.demo_stride)."""

import numpy as np

from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator
from redux.config import RunConfig


def _generator(stride: int) -> BehaviourCloningGenerator:
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor, cfg.sim.episode_steps = "minisim", ["bev"], 2, 12
    cfg.actors.generator, cfg.actors.demo_stride = "expert", stride
    return BehaviourCloningGenerator(cfg, actor_id=0)


def test_a_stride_records_every_kth_decision_of_the_same_drive():
    every, strided = _generator(1), _generator(3)
    all_records, all_stats = every.generate(15)
    some_records, some_stats = strided.generate(5)
    assert strided.session_steps == every.session_steps == [15, 15]
    assert some_stats.env_steps == all_stats.env_steps == 30 and some_stats.episodes == all_stats.episodes == 2
    for full, sampled in zip(all_records, some_records):
        assert len(sampled.tensors["target_actions"]) == 5
        per_decision = sampled.tensors.keys() - {"reward", "done"}
        assert {"target_actions", "ego_history", "plan_actions"} <= per_decision
        for key in per_decision:  # clean demonstrations replay exactly
            np.testing.assert_array_equal(sampled.tensors[key], full.tensors[key][::3])
        # the episode ends at step 12, inside the window of the 4th recorded step (steps 9-11)
        np.testing.assert_array_equal(sampled.tensors["done"], full.tensors["done"].reshape(5, 3).any(axis=1))
        np.testing.assert_allclose(sampled.tensors["reward"], full.tensors["reward"].reshape(5, 3).sum(axis=1), rtol=1e-5)
