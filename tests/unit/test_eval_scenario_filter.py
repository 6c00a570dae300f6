"""`redux eval --scenario`: score a policy on one kind of scene of a suite."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from redux.cli import app
from redux.sim_bridge.minisim.suites import of_scenarios, scenario_of, suite_scene_ids


def test_only_the_named_scenarios_are_kept_in_suite_order():
    ids = suite_scene_ids("minisim-val", 60)
    kept = of_scenarios(ids, ["curve", "nudge"])
    assert kept == [i for i in ids if scenario_of(i) in ("curve", "nudge")] and len(kept) >= 4
    with pytest.raises(ValueError, match="unknown scenarios.*'curvy'"):
        of_scenarios(ids, ["curvy"])
    with pytest.raises(ValueError, match="none of the 2 scenes"):
        of_scenarios(ids[:2], ["unprotected_left"])


def test_the_eval_command_drives_and_scores_only_those_scenes(tmp_path):
    out = tmp_path / "curves"
    args = ["eval", "--policy", "lane-keeper", "--suite", "minisim-val:60", "--out", str(out), "--scenario", "curve"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "metrics.parquet")
    assert set(table.scenario) == {"curve"}
    assert sorted(set(table.scene_id)) == of_scenarios(suite_scene_ids("minisim-val", 60), ["curve"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenarios"] == ["curve"] and summary["rollouts"] == table.scene_id.nunique()

    result = CliRunner().invoke(app, [*args[:-1], "curvy"])
    assert result.exit_code != 0 and "unknown scenarios" in str(result.exception)
