"""Many callers' ``act`` requests, one batched policy call.

A replica shared by many rollout actors receives their requests concurrently (a
threaded Ray actor). Each caller blocks in :meth:`RequestBatcher.submit`; one worker
thread takes the oldest request, waits up to ``max_wait_s`` for others with the same
sampling settings to join until ``max_batch`` observations are gathered, makes one
policy call over all of them and hands every caller its own rows of the output. A
failed call fails each of its callers with the same error; the worker lives on.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

from redux.policy.interface import PolicyOutput


@dataclass
class _Request:
    observations: list
    num_samples: int
    greedy: bool
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> tuple[int, bool]:
        return self.num_samples, self.greedy


def split_output(out: PolicyOutput, sizes: list[int]) -> list[PolicyOutput]:
    """Per-caller slices of a batched output (B rows → rows of each caller, K samples each)."""
    k = out.actions.shape[1]
    parts, first = [], 0
    for size in sizes:
        rows = slice(first, first + size)
        extras = {name: value[rows] for name, value in out.extras.items()}
        reasoning = None if out.reasoning is None else out.reasoning[first * k : (first + size) * k]
        parts.append(
            replace(out, actions=out.actions[rows], poses=out.poses[rows], log_probs=out.log_probs[rows],
                    timings=dict(out.timings), reasoning=reasoning, extras=extras)
        )  # fmt: skip
        first += size
    return parts


class RequestBatcher:
    def __init__(self, act, max_batch: int, max_wait_s: float):
        """``act(observations, num_samples, greedy) -> PolicyOutput`` is the batched policy call."""
        self.act = act
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.queue: queue.Queue[_Request] = queue.Queue()
        self.calls = 0
        self.observations = 0
        self._worker = threading.Thread(target=self._serve, name="request-batcher", daemon=True)
        self._worker.start()

    def submit(self, observations: list, num_samples: int = 1, greedy: bool = False) -> PolicyOutput:
        if not observations:
            raise ValueError("act needs at least one observation")
        request = _Request(list(observations), num_samples, greedy)
        self.queue.put(request)
        return request.future.result()

    @property
    def mean_batch(self) -> float:
        return self.observations / self.calls if self.calls else 0.0

    def _serve(self) -> None:
        held: list[_Request] = []  # requests taken while gathering that wait for a batch of their own kind
        while True:
            first = held.pop(0) if held else self.queue.get()
            batch, size = [first], len(first.observations)
            deadline = time.monotonic() + self.max_wait_s
            for other in [r for r in held if r.key == first.key]:
                if size + len(other.observations) > self.max_batch:
                    break
                held.remove(other)
                batch.append(other)
                size += len(other.observations)
            while size < self.max_batch:
                try:
                    other = self.queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if other.key != first.key or size + len(other.observations) > self.max_batch:
                    held.append(other)
                    continue
                batch.append(other)
                size += len(other.observations)
            self._run(batch, size)

    def _run(self, batch: list[_Request], size: int) -> None:
        first = batch[0]
        try:
            out = self.act([o for r in batch for o in r.observations], first.num_samples, first.greedy)
        except BaseException as err:  # noqa: BLE001 - every caller must hear of it; the worker must live
            for request in batch:
                request.future.set_exception(err)
            return
        self.calls += 1
        self.observations += size
        for request, part in zip(batch, split_output(out, [len(r.observations) for r in batch])):
            request.future.set_result(part)
