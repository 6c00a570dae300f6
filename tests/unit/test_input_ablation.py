import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from redux.config import RunConfig
from redux.policy.input_ablation import (
    ABLATIONS,
    HORIZON_STEPS,
    expert_drive_observations,
    measure_input_use,
)
from redux.policy.ego_history import straightened_history
from redux.policy.reference import ConstantVelocity

coordinates = st.floats(-50.0, 50.0, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (16, 3), elements=coordinates))
def test_straightened_history_keeps_the_spacing_and_drops_the_rest(history):
    straight = straightened_history(history)
    assert straight.shape == history.shape
    np.testing.assert_allclose(
        np.diff(straight[:, 0]), np.linalg.norm(np.diff(history[:, :2], axis=0), axis=1), rtol=1e-9, atol=1e-9
    )
    assert np.all(straight[:, 1:] == 0.0)
    assert straight[-1, 0] == 0.0  # t0 stays the origin
    assert np.all(np.diff(straight[:, 0]) >= 0)  # oldest farthest behind


def test_straightened_history_refuses_what_is_not_poses():
    with pytest.raises(ValueError, match=r"\(T, 3\) poses"):
        straightened_history(np.zeros((16, 2)))


def _expert_drive(every: int, scenes=(0, 2)):  # scene 2 is a curve
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.suite, cfg.sim.episode_steps = "minisim", "minisim-val", 50  # the bend starts at 3 s
    return list(expert_drive_observations(cfg.sim, list(scenes), every))


def test_the_expert_drive_is_sampled_every_k_steps_with_its_labels():
    batches = _expert_drive(every=10)
    assert len(batches) == 5 and all(len(b) == 2 for b in batches)
    assert [b[0].time_us for b in batches] == [batches[0][0].time_us + k * 1_000_000 for k in range(5)]
    assert all("expert_actions" in o.labels for b in batches for o in b)
    with pytest.raises(ValueError, match="every must be"):
        next(iter(expert_drive_observations(RunConfig().sim, [0], 0)))


def test_a_policy_that_reads_nothing_changes_nothing():
    rows = {r["input"]: r for r in measure_input_use(ConstantVelocity(), iter(_expert_drive(every=10)))}
    assert set(rows) == {*ABLATIONS, "all (real plan)", "all (expert)", "all (real plan's spread)", "all (real plan's mean)"}
    for name in ABLATIONS:
        assert rows[name]["curvature_per_m"] == 0.0 and rows[name]["acceleration_m_s2"] == 0.0
    assert rows["all (expert)"]["curvature_share_of_spread"] == pytest.approx(1.0)
    assert rows["all (real plan)"]["acceleration_m_s2"] > 0  # the expert does accelerate and brake
    assert all(r["decisions"] == 10 for r in rows.values())
    # constant-velocity never plans an acceleration: no spread of its own, and its mean is
    # minus the expert's mean acceleration (signed)
    assert rows["all (real plan's spread)"]["acceleration_m_s2"] == 0.0
    expert = np.stack([o.labels["expert_actions"][:HORIZON_STEPS, 0] for b in _expert_drive(every=10) for o in b])
    assert abs(expert.mean()) > 1e-3  # else the check below would pass for an unsigned zero too
    assert rows["all (real plan's mean)"]["acceleration_m_s2"] == pytest.approx(-expert.mean(), rel=1e-4)


def test_nothing_to_measure_is_a_clear_error():
    assert measure_input_use(ConstantVelocity(), iter(_expert_drive(every=10, scenes=(0,))))[0][
        "curvature_share_of_spread"
    ] in (None, 0.0)  # a straight road: no spread to compare with
    with pytest.raises(ValueError, match="no observations"):
        measure_input_use(ConstantVelocity(), iter([]))
