import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from redux.policy.action_space import HORIZON
from redux.policy.alpamayo.plan_units import MIN_SCALE, MINISIM_STATS, PlanUnits, plan_unit_stats, read_stats, stats_of, write_stats

finite = st.floats(-50, 50, allow_nan=False, width=32)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, (3, HORIZON, 2), elements=finite))
def test_into_the_units_and_back_is_the_identity(plans):
    units = PlanUnits("minisim")
    x = torch.from_numpy(plans)
    torch.testing.assert_close(units.from_flow(units.to_flow(x)), x, atol=1e-4, rtol=1e-5)


def test_published_units_are_the_identity():
    units = PlanUnits("published")
    x = torch.randn(2, HORIZON, 2)
    assert torch.equal(units.to_flow(x), x) and torch.equal(units.from_flow(x), x)


def test_minisim_units_standardise_the_demonstrations_they_came_from():
    shift, scale = read_stats(MINISIM_STATS)
    meta = json.loads(MINISIM_STATS.read_text())
    assert meta["decisions"] >= 1000 and meta["command"].startswith("redux policy plan-units")
    # minisim steers less than the published statistics expect: near curvature spreads below 1 unit
    assert scale[:10, 1].mean() < 1.0 and scale[:10, 1].mean() < scale[:10, 0].mean()


def test_stats_of_plans_give_each_waypoint_zero_mean_and_unit_spread(tmp_path):
    rng = np.random.default_rng(0)
    plans = rng.normal([0.3, -0.1], [1.2, 0.4], (500, HORIZON, 2)).astype(np.float32)
    plans[:, 0, 1] = 0.25  # a waypoint that never varies keeps a floor on its scale
    shift, scale = stats_of(plans)
    assert scale[0, 1] == pytest.approx(MIN_SCALE)
    write_stats(tmp_path / "u.json", shift, scale, {"command": "test"})
    back_shift, back_scale = read_stats(tmp_path / "u.json")
    np.testing.assert_allclose(back_shift, shift, atol=1e-5)
    z = (plans - back_shift) / back_scale
    np.testing.assert_allclose(z[:, 1:].mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(z[:, 1:].std(0), 1.0, atol=1e-3)


def test_bad_units_and_bad_statistics_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown plan units"):
        plan_unit_stats("metric")
    with pytest.raises(ValueError, match="at least two plans"):
        stats_of(np.zeros((1, HORIZON, 2)))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"shift": np.zeros((HORIZON, 2)).tolist(), "scale": np.zeros((HORIZON, 2)).tolist()}))
    with pytest.raises(ValueError, match="every scale at least"):
        read_stats(path)
    path.write_text(json.dumps({"shift": [0.0], "scale": [1.0]}))
    with pytest.raises(ValueError, match="must be"):
        read_stats(path)


def test_a_checkpoint_from_before_plan_units_loads_in_the_published_units(tmp_path):
    from redux.buffer.codec import encode_tensors
    from redux.config import PolicyConfig
    from redux.policy.alpamayo.factory import build_alpamayo
    from redux.policy.loading import checkpoint_weights

    older = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny")).state_dict()
    older = {k: v for k, v in older.items() if not k.startswith("plan_units.")}
    path = tmp_path / "policy.weights"
    path.write_bytes(encode_tensors(older))
    into = build_alpamayo(PolicyConfig(kind="alpamayo", preset="tiny", plan_units="minisim"))
    into.load_state_dict(checkpoint_weights(path), strict=True)
    assert torch.equal(into.plan_units.shift, torch.zeros(HORIZON, 2)) and torch.equal(into.plan_units.scale, torch.ones(HORIZON, 2))
    # a checkpoint that has units keeps its own, and other policies' weights are left alone
    current = {"action_out_proj.weight": torch.zeros(2, 4), "plan_units.shift": torch.full((HORIZON, 2), 3.0)}
    path.write_bytes(encode_tensors(current))
    assert checkpoint_weights(path).keys() == current.keys()
    path.write_bytes(encode_tensors({"head.weight": torch.zeros(2)}))
    assert list(checkpoint_weights(path)) == ["head.weight"]
