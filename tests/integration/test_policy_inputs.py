"""`redux policy inputs` on a real (untrained) Alpamayo checkpoint and on a reference policy."""

import json

from typer.testing import CliRunner

from redux.cli import app


def _rows(*args: str) -> dict[str, dict]:
    result = CliRunner().invoke(app, ["policy", "inputs", *args, "--suite", "minisim-val:3", "--every", "25", "--json"])
    assert result.exit_code == 0, result.output
    return {row["input"]: row for row in json.loads(result.stdout)}


def test_an_alpamayo_checkpoint_reads_its_camera(tiny_alpamayo_run):
    rows = _rows(str(tiny_alpamayo_run))
    # random weights: the plan follows every input, the blanked raster and the wrong scene's alike
    assert rows["camera blanked"]["curvature_per_m"] > 0 and rows["camera swapped"]["acceleration_m_s2"] > 0
    assert rows["all (real plan)"]["decisions"] == 3 * 4  # scene 2 bends: the expert spread is not zero


def test_lane_keeper_reads_neither_camera_nor_history_shape():
    rows = _rows("lane-keeper")
    assert rows["camera blanked"]["curvature_per_m"] == 0.0
    assert rows["history straightened"]["acceleration_m_s2"] == 0.0  # its speed comes from the spacing alone
    assert rows["all (real plan)"]["curvature_share_of_spread"] < 1.0  # it follows the route
