"""Ego-history edits: what a plan may not lean on."""

from __future__ import annotations

import numpy as np


def straightened_history(history: np.ndarray) -> np.ndarray:
    """(16, 3) ego poses (x, y, yaw), newest last at the origin, laid on the x axis behind it
    at their true spacing: speed and acceleration survive, lateral offset and heading do not."""
    history = np.asarray(history)
    if history.ndim != 2 or history.shape[1] < 3:
        raise ValueError(f"ego history must be (T, 3) poses, got shape {history.shape}")
    steps = np.linalg.norm(np.diff(history[:, :2], axis=0), axis=1)
    behind = np.concatenate([np.cumsum(steps[::-1])[::-1], [0.0]])
    straight = np.zeros_like(history)
    straight[:, 0] = -behind
    return straight
