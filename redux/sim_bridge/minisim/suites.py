"""Named scene suites with fixed seeds: minisim-train, minisim-val, minisim-test and minisim-hard.

A scene is identified by (suite, scene id) and generated from ``rng([suite seed,
scene id])``, so the same inputs always give identical arrays and the train and
validation and test suites (different seeds) never share a scene. minisim-test has 910 scenes,
the size of Alpasim's public_2507 set. minisim-hard is the hard share of
minisim-test: the same scenes under the same ids.

Scenario mix, a fixed function of the scene index (``scenario_of``): in every block
of four consecutive ids the last is hard (25 %), cycling through the hard
scenarios block by block; the other three cycle through the normal scenarios.
Every scenario appears within the first 40 ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from redux.sim_bridge.minisim.scenarios import HARD, NORMAL, generate
from redux.sim_bridge.minisim.scene import Scene
from redux.sim_bridge.minisim.scene_builder import ScenarioParams

HARD_SUITE = "minisim-hard"
_HARD_NAMES = tuple(HARD)
_NORMAL_NAMES = tuple(NORMAL)
SCENARIO_NAMES = _NORMAL_NAMES + _HARD_NAMES


@dataclass(frozen=True)
class Suite:
    size: int
    seed: int


SUITES = {
    "minisim-train": Suite(5000, 20_250_701),
    "minisim-test": Suite(910, 20_250_702),
    # for choosing checkpoints and settings, so that minisim-test stays unseen until the end
    "minisim-val": Suite(500, 20_250_703),
}


def scenario_of(index: int) -> str:
    block, position = divmod(index, 4)
    if position == 3:
        return _HARD_NAMES[block % len(_HARD_NAMES)]
    return _NORMAL_NAMES[(3 * block + position) % len(_NORMAL_NAMES)]


def _hard_test_ids() -> list[int]:
    return [i for i in range(SUITES["minisim-test"].size) if scenario_of(i) in HARD]


def suite_size(name: str) -> int:
    if name == HARD_SUITE:
        return len(_hard_test_ids())
    if name not in SUITES:
        raise ValueError(f"unknown minisim suite {name!r}; known: {sorted([*SUITES, HARD_SUITE])}")
    return SUITES[name].size


def parse_suite(spec: str) -> tuple[str, int]:
    """ "minisim-test:3" → ("minisim-test", 3); without a count, the whole suite."""
    name, _, count = spec.partition(":")
    size = suite_size(name)
    n = int(count) if count else size
    if not 0 < n <= size:
        raise ValueError(f"{spec!r}: the suite has {size} scenes")
    return name, n


def suite_scene_ids(name: str, n: int) -> list[int]:
    """The first ``n`` scene ids of a suite."""
    ids = _hard_test_ids() if name == HARD_SUITE else list(range(suite_size(name)))
    return ids[:n]


def of_scenarios(scene_ids: list[int], scenarios: list[str]) -> list[int]:
    """The scenes among ``scene_ids`` whose scenario is one of ``scenarios`` (in their order)."""
    unknown = sorted(set(scenarios) - set(SCENARIO_NAMES))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; known: {sorted(SCENARIO_NAMES)}")
    kept = [i for i in scene_ids if scenario_of(i) in scenarios]
    if not kept:
        raise ValueError(f"none of the {len(scene_ids)} scenes is a {' or '.join(scenarios)} scene")
    return kept


def weighted_scene_order(name: str, weights: dict[str, float]) -> list[int]:
    """One pass over suite ``name`` in which each scenario's scenes come round ``weights[scenario]``
    times as often as in the suite (unnamed scenarios: 1; 0 leaves a scenario out).

    A scenario with n scenes and weight w fills round(w·n) places of the pass (at least one
    when w > 0), cycling through its scenes in id order; the places are spread evenly over
    the pass, so every stretch of training sees the weighted mix, not one scenario at a time.
    """
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"scenario weights must be >= 0, got {weights}")
    by_scenario: dict[str, list[int]] = {}
    for scene_id in suite_scene_ids(name, suite_size(name)):
        by_scenario.setdefault(scenario_of(scene_id), []).append(scene_id)
    places = []  # (position in the pass as a fraction, tie-break, scene id)
    for rank, (scenario, ids) in enumerate(by_scenario.items()):
        weight = weights.get(scenario, 1.0)
        count = max(1, round(weight * len(ids))) if weight > 0 else 0
        places += [((j + 0.5) / count, rank, ids[j % len(ids)]) for j in range(count)]
    if not places:
        raise ValueError(f"scenario weights {weights} leave no scene of {name}")
    return [scene_id for _, _, scene_id in sorted(places)]


def generate_scene(suite: str, scene_id: int, episode_steps: int = 100) -> Scene:
    """Scene ``scene_id`` of ``suite``: deterministic, a few tens of milliseconds on one core."""
    if suite == HARD_SUITE:
        if scenario_of(scene_id) not in HARD:
            raise ValueError(f"scene {scene_id} is not in {HARD_SUITE}")
        suite = "minisim-test"
    if not 0 <= scene_id < suite_size(suite):
        raise ValueError(f"{suite} has scenes 0 to {suite_size(suite) - 1}, not {scene_id}")
    seed = SUITES[suite].seed
    rng = np.random.default_rng([seed, scene_id])
    return generate(scenario_of(scene_id), rng, scene_id, seed, ScenarioParams(episode_steps=episode_steps))
