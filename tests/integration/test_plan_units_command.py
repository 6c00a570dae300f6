"""`redux policy plan-units` records demonstrations and writes units the model can read."""

import json

import numpy as np
from typer.testing import CliRunner

from redux.cli import app
from redux.policy.alpamayo.plan_units import read_stats


def test_plan_units_are_measured_from_the_recipes_demonstrations(tmp_path):
    out = tmp_path / "units.json"
    args = ["policy", "plan-units", "--sessions", "2", "--calls", "2", "--out", str(out), "--set", "actors.rollout_steps=4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    shift, scale = read_stats(out)
    meta = json.loads(out.read_text())
    assert meta["decisions"] == 2 * 2 * 4 and meta["suite"] == "minisim-train"
    # 16 decisions of a real drive: the plans vary, and not alike at every waypoint
    assert np.ptp(scale[:, 0]) > 0 and np.abs(shift).max() > 0
