"""Which scene each session drives, and where a resumed run's scene order goes on."""

import logging

import pytest

from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator
from redux.config import RunConfig
from redux.learner.loop import resumed_episode


def _generator(first_episode: int = 0, actor_id: int = 0) -> BehaviourCloningGenerator:
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor, cfg.sim.episode_steps = "minisim", ["bev"], 2, 6
    cfg.actors.generator, cfg.actors.num = "expert", 2
    return BehaviourCloningGenerator(cfg, actor_id=actor_id, first_episode=first_episode)


def _scenes(generator: BehaviourCloningGenerator) -> list[int]:
    return [slot.scene.scene_id for slot in generator.sessions.slots]


def test_sessions_of_all_actors_interleave_over_the_scenes():
    first, second = _generator(actor_id=0), _generator(actor_id=1)
    assert _scenes(first) == [0, 1] and _scenes(second) == [2, 3]
    first.generate(6)  # one whole episode: every session moves on by all 4 sessions
    assert _scenes(first) == [4, 5]


def test_a_resumed_scene_order_goes_on_where_the_first_part_stopped():
    fresh, resumed = _generator(), _generator(first_episode=3)
    assert _scenes(resumed) == [12, 13]  # 3 rounds of 4 sessions already driven
    fresh.generate(3 * 6)
    assert _scenes(fresh) == _scenes(resumed)
    records, _ = resumed.generate(2)
    assert [r.episode for r in records] == [3, 3]


def test_a_negative_first_episode_is_refused():
    with pytest.raises(ValueError, match="first_episode"):
        _generator(first_episode=-1)


def test_a_checkpoint_without_its_last_episode_restarts_the_order_and_says_so(caplog):
    assert resumed_episode({"step": 400, "next_episode": 7}) == 7
    with caplog.at_level(logging.WARNING, logger="redux.learner.loop"):
        assert resumed_episode({"step": 1200}) == 0
    assert "step 1200" in caplog.text and "replay" in caplog.text
