"""Choose a run's checkpoint by how it drives, not by when it was saved.

Behaviour cloning lowers the open-loop loss long after closed-loop driving has peaked
(a plan a little closer to the expert's on average can still drift off the road once its
own errors feed back), so the last checkpoint is often not the best driver. Every kept
checkpoint is scored closed loop on a validation suite (minisim-val by default, so that
minisim-test stays unseen) and the one with the highest driving score wins; ties go to
fewer collisions, then to the later step.
"""

from __future__ import annotations

import json
from pathlib import Path

from redux.actors.evaluation_job import run_evaluation
from redux.config import RunConfig
from redux.policy.loading import POLICY_WEIGHTS, decoding_overrides

SELECTION_FILE = "selection.json"
_SCORES = ("driving_score", "collision_rate", "offroad_rate", "min_ade_6", "decision_ms")


def checkpoints_of(run_dir: Path) -> list[Path]:
    found = sorted(p.parent for p in (run_dir / "checkpoints").glob(f"step*/{POLICY_WEIGHTS}"))
    if not found:
        raise FileNotFoundError(f"{run_dir} has no checkpoints with {POLICY_WEIGHTS} under checkpoints/")
    return found


def _scored(out: Path, suite: str) -> dict | None:
    """An earlier score of this checkpoint on this suite (checkpoints never change), so that
    selection can run while training goes on and later calls score only the new ones."""
    path = out / "summary.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        if summary.get("suite") == suite:
            return summary
    return None


def best_of(rows: list[dict]) -> dict:
    return max(rows, key=lambda r: (r["driving_score"], -r["collision_rate"], r["step"]))


def select_checkpoint(cfg: RunConfig, run_dir: Path, suite: str, actors: int, progress=None) -> dict:
    """Score every checkpoint of ``run_dir`` on ``suite``; writes ``selection.json`` in the run."""
    rows = []
    decoding = decoding_overrides(cfg)  # e.g. --set policy.plan=trajectory_tokens: scored apart
    tag = "".join(f"-{key}={value}" for key, value in decoding.items())
    for checkpoint in checkpoints_of(run_dir):
        out = run_dir / "selection" / f"{checkpoint.name}{tag}"
        summary = _scored(out, suite) or run_evaluation(cfg, str(checkpoint), suite, out, actors)
        rows.append({"checkpoint": str(checkpoint), "step": int(checkpoint.name.removeprefix("step"))}
                    | {k: summary[k] for k in _SCORES})
        if progress is not None:
            progress(rows[-1])
    result = {"suite": suite, "decoding": decoding, "rows": rows, "best": best_of(rows)}
    (run_dir / SELECTION_FILE).write_text(json.dumps(result, indent=2))
    return result
