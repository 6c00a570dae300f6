"""What the learner reports: a stats message and TensorBoard scalars per step, and the
summary of one ``train`` call.

Both the DeepSpeed learner and the simulated one report through this, so the console
and the throughput benchmarks read the same fields whichever of them ran.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Any

from tensorboardX import SummaryWriter

from redux.buffer.stats_channel import StatsChannel
from redux.learner.weight_transport import WeightHandle

# The rate in each stats message covers this much recent time: long enough to smooth
# step-to-step jitter, short enough that a stall shows within seconds.
_RATE_WINDOW_S = 10.0


class LearnerTelemetry:
    def __init__(self, stats: StatsChannel, tensorboard_dir: Path | None, steps_total: int):
        """``tensorboard_dir`` None: report on the stats stream only."""
        self._stats = stats
        self._steps_total = steps_total
        self._writer = SummaryWriter(str(tensorboard_dir)) if tensorboard_dir is not None else None
        self._recent: deque[tuple[float, float, int]] = deque()  # (step start, step end, samples), monotonic
        self._publish_ms: float | None = None
        self.begin_call()

    def begin_call(self) -> None:
        """Start the tally that :meth:`summary` reports for one ``train`` call."""
        self._call_start = time.monotonic()
        self._call_steps = 0
        self._call_samples = 0
        self._call_losses: list[float] = []
        self._call_staleness: list[int] = []
        self._call_publish_ms: float | None = None

    def record_publish(self, publish_ms: float) -> None:
        self._publish_ms = self._call_publish_ms = publish_ms

    def record_step(
        self, step: int, version: int, step_start: float, samples: int, staleness: list[int], metrics: dict[str, float]
    ) -> None:
        """One optimiser step that began at ``step_start`` (time.monotonic) and ends now."""
        now = time.monotonic()
        self._recent.append((step_start, now, samples))
        while now - self._recent[0][1] > _RATE_WINDOW_S:
            self._recent.popleft()
        window_s = max(now - self._recent[0][0], 1e-9)
        steps_per_s = len(self._recent) / window_s
        loss = metrics.get("loss", math.nan)
        self._call_steps += 1
        self._call_samples += samples
        self._call_losses.append(loss)
        self._call_staleness += staleness
        message = {
            "source": "learner",
            "step": step,
            "steps_total": self._steps_total,
            "version": version,
            "loss": loss,
            "steps_per_s": steps_per_s,
            "samples": samples,
            "staleness_mean": sum(staleness) / len(staleness),
            "staleness_max": max(staleness),
            "publish_ms": self._publish_ms,
            "time": time.time(),
        }
        self._stats.publish(message)
        if self._writer is None:
            return
        scalars = {**metrics, **{k: message[k] for k in ("steps_per_s", "staleness_mean", "staleness_max", "version")}}
        scalars["samples_per_s"] = sum(n for _, _, n in self._recent) / window_s
        if self._publish_ms is not None:
            scalars["publish_ms"] = self._publish_ms
        for name, value in scalars.items():
            self._writer.add_scalar(f"learner/{name}", value, step)

    def summary(self, step: int, version: int, handle: WeightHandle | None, done: bool) -> dict[str, Any]:
        """What ``train`` returns: this call's averages and the latest state."""
        elapsed = max(time.monotonic() - self._call_start, 1e-9)
        staleness = self._call_staleness
        return {
            "step": step,
            "steps_total": self._steps_total,
            "version": version,
            "handle": handle,
            "loss": sum(self._call_losses) / len(self._call_losses) if self._call_losses else math.nan,
            "steps_per_s": self._call_steps / elapsed,
            "samples_per_s": self._call_samples / elapsed,
            "publish_ms": self._call_publish_ms,
            "staleness_mean": sum(staleness) / len(staleness) if staleness else math.nan,
            "staleness_max": max(staleness) if staleness else 0,
            "done": done,
        }

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
