"""Perturbed demonstrations: the push statistics, and the labels staying the expert's."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from redux.actors.generators.behaviour_cloning import BehaviourCloningGenerator
from redux.actors.generators.demo_perturbation import DemoPerturbation
from redux.config import RunConfig
from redux.policy.action_space import DT_S, normalise


def test_offsets_have_the_stationary_std_and_correlation_time():
    push = DemoPerturbation(sessions=400, std=0.3, correlation_s=1.0, seed=0)
    start = push.offsets.copy()
    lag = round(1.0 / DT_S)
    for _ in range(lag):
        push.step()
    assert push.offsets.std() == pytest.approx(0.3, rel=0.1)
    correlation = np.corrcoef(start.ravel(), push.offsets.ravel())[0, 1]
    assert correlation == pytest.approx(np.exp(-1.0), abs=0.07)  # one correlation time later


def test_reset_redraws_one_session_only():
    push = DemoPerturbation(sessions=3, std=0.5, correlation_s=1.0, seed=1)
    before = push.offsets.copy()
    push.reset(1)
    np.testing.assert_array_equal(push.offsets[[0, 2]], before[[0, 2]])
    assert not np.array_equal(push.offsets[1], before[1])


@settings(max_examples=30, deadline=None)
@given(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0))
def test_apply_shifts_the_normalised_actions_by_the_offset(accel_offset, curvature_offset):
    push = DemoPerturbation(sessions=1, std=0.0, correlation_s=1.0, seed=0)
    push.offsets[0] = (accel_offset, curvature_offset)
    actions = np.stack([np.linspace(-1.0, 1.0, 64), np.linspace(-0.02, 0.02, 64)], axis=1).astype(np.float32)
    shifted = normalise(push.apply(0, actions)) - normalise(actions)
    np.testing.assert_allclose(shifted, np.broadcast_to([accel_offset, curvature_offset], shifted.shape), atol=1e-3)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        DemoPerturbation(sessions=1, std=-0.1, correlation_s=1.0, seed=0)
    with pytest.raises(ValueError):
        DemoPerturbation(sessions=1, std=0.1, correlation_s=0.0, seed=0)


def _demonstrations(demo_noise: float):
    cfg = RunConfig()
    cfg.sim.kind, cfg.sim.cameras, cfg.sim.sessions_per_actor = "minisim", ["bev"], 2
    cfg.actors.generator = "expert"
    cfg.actors.demo_noise = demo_noise
    generator = BehaviourCloningGenerator(cfg, actor_id=0)
    records, _ = generator.generate(30)
    return generator, records


def test_perturbed_demonstrations_leave_the_line_and_are_labelled_with_the_way_back():
    clean_generator, clean = _demonstrations(0.0)
    pushed_generator, pushed = _demonstrations(0.4)
    for record in clean:  # clean: the car executes exactly what it is taught
        np.testing.assert_allclose(normalise(record.tensors["plan_actions"]), record.tensors["target_actions"], atol=1e-4)
    executed = np.concatenate([normalise(r.tensors["plan_actions"]) for r in pushed])
    taught = np.concatenate([r.tensors["target_actions"] for r in pushed])
    assert np.abs(executed - taught).mean() > 0.1  # the push shows in what the car did ...
    # ... and the car really is off its line, so the labels are recoveries
    offset = lambda generator: max(abs(slot.route_d) for slot in generator.sessions.slots)  # noqa: E731
    assert offset(pushed_generator) > offset(clean_generator) + 0.05
