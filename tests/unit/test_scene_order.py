"""Which scene each session drives, and where a resumed run's scene order goes on."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator
from redux.config import ConfigError, RunConfig, load_config
from redux.learner.loop import resumed_episode
from redux.sim_bridge import scene_order
from redux.sim_bridge.minisim.scenarios import SCENARIOS
from redux.sim_bridge.minisim.suites import SUITES, scenario_of, weighted_scene_order


def _generator(first_episode: int = 0, actor_id: int = 0, **sim) -> BehaviourCloningGenerator:
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor, cfg.sim.episode_steps = "minisim", ["bev"], 2, 6
    for key, value in sim.items():
        setattr(cfg.sim, key, value)
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


# -- a training mix weighted by scenario (sim.scenario_weights) --------------------------------------


def test_without_weights_sessions_drive_the_suite_in_id_order():
    cfg = RunConfig()
    cfg.sim.kind = "minisim"
    assert scene_order(cfg.sim) == list(range(SUITES["minisim-train"].size))
    cfg.sim.kind = "lane"
    assert scene_order(cfg.sim) is None


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(SCENARIOS)), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]), min_size=1))
def test_each_scenario_fills_its_weighted_share_of_the_pass(weights):
    if all(weights.get(name, 1.0) == 0 for name in SCENARIOS):
        with pytest.raises(ValueError, match="no scene"):
            weighted_scene_order("minisim-val", weights)
        return
    order = weighted_scene_order("minisim-val", weights)
    for name in SCENARIOS:
        own = [i for i in range(SUITES["minisim-val"].size) if scenario_of(i) == name]
        drawn = [i for i in order if scenario_of(i) == name]
        weight = weights.get(name, 1.0)
        assert len(drawn) == (0 if weight == 0 else max(1, round(weight * len(own))))
        # its scenes come round in id order, each as often as the others (to within one)
        assert drawn == [own[j % len(own)] for j in range(len(drawn))]


def test_a_weighted_scenario_is_spread_over_the_pass_not_bunched():
    order = weighted_scene_order("minisim-train", {"curve": 4.0, "straight": 0.0})
    curves = [k for k, i in enumerate(order) if scenario_of(i) == "curve"]
    share = len(curves) / len(order)
    n_curve, n_straight = (sum(scenario_of(i) == name for i in range(5000)) for name in ("curve", "straight"))
    assert share == pytest.approx(4 * n_curve / (5000 - n_straight + 3 * n_curve))  # 4×, straight left out
    is_curve = np.isin(np.arange(len(order)), curves)
    windows = np.lib.stride_tricks.sliding_window_view(is_curve, 100).mean(axis=1)
    assert np.abs(windows - share).max() < 0.05  # every stretch of 100 episodes sees the weighted mix
    assert all(scenario_of(i) != "straight" for i in order)


def test_sessions_cycle_through_the_weighted_order():
    generator = _generator(scenario_weights={"curve": 3.0})
    order = weighted_scene_order("minisim-train", {"curve": 3.0})
    assert _scenes(generator) == order[:2]
    generator.generate(6)
    assert _scenes(generator) == order[4:6]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scenario_weights": {"curvy": 2.0}}, "unknown scenarios"),
        ({"scenario_weights": {"curve": -1.0}}, ">= 0"),
        ({"kind": "lane", "scenario_weights": {"curve": 2.0}}, "minisim"),
    ],
)
def test_bad_weights_are_refused_with_the_reason(overrides, message):
    weights = [f"sim.scenario_weights.{name}={w}" for name, w in overrides["scenario_weights"].items()]
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"sim.kind={overrides.get('kind', 'minisim')}", *weights])

