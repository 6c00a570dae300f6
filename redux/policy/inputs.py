"""Observations → the arrays a model consumes; the same arrays travel in records.

Actors store exactly these arrays in rollout records and the learner feeds them
back to the model, so acting and training can never see different inputs.
"""

from __future__ import annotations

import numpy as np

from redux.sim_bridge.session import Observation

BEV_CAMERA = "bev"


def model_inputs(observations: list[Observation]) -> dict[str, np.ndarray]:
    return {
        "bev": np.stack([o.cameras[BEV_CAMERA] for o in observations]),
        "ego_history": np.stack([o.ego_history for o in observations]).astype(np.float32),
    }
