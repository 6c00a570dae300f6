"""Parameter counts of the presets, computed on the meta device, and `redux policy info`."""

import json

import pytest
from typer.testing import CliRunner

from redux.cli import app
from redux.policy.alpamayo.info import meta_model, parameter_counts


@pytest.fixture(scope="module")
def counts():
    return {name: parameter_counts(name) for name in ("alpamayo-r1-10b", "teacher", "student", "tiny")}


def test_the_10b_preset_has_the_published_size(counts):
    r1 = counts["alpamayo-r1-10b"]
    assert 10.5e9 <= r1["total"] <= 11.1e9
    assert r1["expert"] == pytest.approx(2.3e9, rel=0.05)
    assert r1["dimensions"]["expert_hidden"] == 2048 and r1["dimensions"]["layers"] == 36


def test_components_add_up(counts):
    for c in counts.values():
        assert c["backbone"] == c["vision"] + c["language_model"]
        assert c["total"] == c["backbone"] + c["expert"] + c["reasoning_heads"]


def test_embedded_presets_keep_the_ten_one_half_ratio(counts):
    teacher = counts["teacher"]["total"]
    assert 0.05 <= counts["student"]["total"] / teacher <= 0.2
    assert 0.02 <= counts["tiny"]["total"] / teacher <= 0.1


def test_building_on_meta_allocates_nothing():
    model = meta_model("alpamayo-r1-10b")
    assert all(p.is_meta for p in model.parameters())
    assert all(b.is_meta for b in model.buffers())


def test_cli_json_matches_the_counts(counts):
    result = CliRunner().invoke(app, ["policy", "info", "--preset", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == counts["tiny"]


def test_cli_table_and_unknown_preset():
    table = CliRunner().invoke(app, ["policy", "info", "--preset", "student-1b"])
    assert table.exit_code == 0 and "expert" in table.output and "student-1b" in table.output
    unknown = CliRunner().invoke(app, ["policy", "info", "--preset", "huge"])
    assert unknown.exit_code == 2
