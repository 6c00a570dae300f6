"""The units the flow expert plans in: the plan per waypoint and axis, shifted and scaled.

Records, the wire and the discrete trajectory tokens carry plans in the published
normalisation (:mod:`redux.policy.action_space`). The expert sees ``z = (a − shift) / scale``
of such a plan ``a``, with (64, 2) buffers stored in the weights, and the policy maps its
samples back. ``published`` is the identity: what the real checkpoint was trained in.
``minisim`` scales minisim's expert demonstrations to zero mean and unit spread per
waypoint and axis. Under the published normalisation minisim's next-second curvature
spreads by 0.6–0.8 units against 1.2 for acceleration (the shipped statistics), so a
squared error weighs a steering miss at a quarter to a half of a speed miss, and the flow
noise (unit spread everywhere) swamps the steering first; docs/benchmarks.md ("Two
stages") measures what that costs.

The minisim statistics ship as ``minisim_plan_units.json``, written by
``redux policy plan-units`` from the demonstrations the teacher recipe trains on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from redux.policy.action_space import HORIZON

UNITS = ("published", "minisim")
MINISIM_STATS = Path(__file__).with_name("minisim_plan_units.json")
# a waypoint the demonstrations never vary (a constant) is not blown up into noise
MIN_SCALE = 0.05


def plan_unit_stats(units: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale), each (64, 2) float32, of the named units."""
    if units == "published":
        return np.zeros((HORIZON, 2), np.float32), np.ones((HORIZON, 2), np.float32)
    if units == "minisim":
        return read_stats(MINISIM_STATS)
    raise ValueError(f"unknown plan units {units!r}; known: {', '.join(UNITS)}")


def read_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    data = json.loads(Path(path).read_text())
    shift, scale = (np.asarray(data[k], dtype=np.float32) for k in ("shift", "scale"))
    if shift.shape != (HORIZON, 2) or scale.shape != (HORIZON, 2):
        raise ValueError(f"{path}: shift and scale must be ({HORIZON}, 2), got {shift.shape} and {scale.shape}")
    if not (np.all(np.isfinite(shift)) and np.all(scale >= MIN_SCALE)):
        raise ValueError(f"{path}: shift must be finite and every scale at least {MIN_SCALE}")
    return shift, scale


def stats_of(plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-waypoint, per-axis mean and spread of normalised plans (N, 64, 2)."""
    plans = np.asarray(plans, dtype=np.float64)
    if plans.ndim != 3 or plans.shape[1:] != (HORIZON, 2) or len(plans) < 2:
        raise ValueError(f"need at least two plans of shape ({HORIZON}, 2), got {plans.shape}")
    return plans.mean(0).astype(np.float32), np.maximum(plans.std(0), MIN_SCALE).astype(np.float32)


def write_stats(path: str | Path, shift: np.ndarray, scale: np.ndarray, provenance: dict) -> None:
    """JSON with one (acceleration, curvature) pair per line, so a diff shows which waypoints moved."""

    def rows(values: np.ndarray) -> str:
        return "[\n" + ",\n".join(f"  [{a:.5f}, {c:.5f}]" for a, c in values) + "\n ]"

    head = json.dumps(provenance, indent=1)[:-2]
    Path(path).write_text(f'{head},\n "shift": {rows(shift)},\n "scale": {rows(scale)}\n}}\n')


def with_units_of_older_checkpoints(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An Alpamayo state dict written before plan units existed planned in the published
    units: it gets their (identity) buffers, so that its checkpoint still loads strictly."""
    if "action_out_proj.weight" not in named or any(k.startswith("plan_units.") for k in named):
        return named
    shift, scale = plan_unit_stats("published")
    return {**named, "plan_units.shift": torch.from_numpy(shift), "plan_units.scale": torch.from_numpy(scale)}


class PlanUnits(nn.Module):
    """(64, 2) ``shift`` and ``scale`` buffers, persistent so a checkpoint says which units it plans in."""

    def __init__(self, units: str = "published"):
        super().__init__()
        self.units = units
        self.register_buffer("shift", torch.zeros(HORIZON, 2))
        self.register_buffer("scale", torch.ones(HORIZON, 2))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill the buffers from the named units (also after a meta-device build is given storage)."""
        shift, scale = plan_unit_stats(self.units)
        with torch.no_grad():
            self.shift.copy_(torch.from_numpy(shift))
            self.scale.copy_(torch.from_numpy(scale))

    def to_flow(self, normalised: torch.Tensor) -> torch.Tensor:
        return (normalised - self.shift) / self.scale

    def from_flow(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale + self.shift

    def extra_repr(self) -> str:
        return f"units={self.units!r}"
