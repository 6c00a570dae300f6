"""A pool of recent decisions that behaviour-cloning batches are drawn from (a shuffle buffer).

The buffer hands records out in the order they were made. A record is one session's
consecutive steps, and an actor's sessions start their episodes together, so the
records of one optimiser step come from a few sessions at one moment of their
episodes. Cloning on such batches is supervised learning on unshuffled data: each
step's 32 decisions are nearly 4 samples, and the last updates before a checkpoint
all pull toward whatever the sessions were doing then. Every step adds its fresh
decisions here and trains on as many drawn uniformly from the latest ``capacity``
(tf.data's shuffle buffer); on average each decision is still trained on once.

The pool lives in the learner's memory only: a resumed run refills it.
"""

from __future__ import annotations

import torch


class DecisionPool:
    def __init__(self, capacity: int, batch_decisions: int, seed: int):
        if capacity < batch_decisions:
            raise ValueError(
                f"learner.shuffle_decisions ({capacity}) must hold at least one step's decisions "
                f"({batch_decisions}: learner.rollouts_per_step × actors.rollout_steps)"
            )
        self.capacity = capacity
        self.generator = torch.Generator().manual_seed(seed)
        self.tensors: dict[str, torch.Tensor] = {}
        self.size = 0
        self._next = 0  # ring position of the next write

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        """Decisions along the leading axis of every tensor; the oldest make room."""
        n = _decisions(batch)
        if not self.tensors:
            self.tensors = {k: torch.empty((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in batch.items()}
        self._check_fits(batch)
        kept = min(n, self.capacity)
        slots = (self._next + torch.arange(kept)) % self.capacity
        for key, pooled in self.tensors.items():
            pooled[slots] = batch[key][n - kept :]
        self._next = (self._next + kept) % self.capacity
        self.size = min(self.capacity, self.size + kept)

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` distinct decisions, uniformly from the pool."""
        if not 0 < n <= self.size:
            raise ValueError(f"cannot draw {n} decisions from a pool holding {self.size}")
        slots = torch.randperm(self.size, generator=self.generator)[:n]
        return {key: pooled[slots] for key, pooled in self.tensors.items()}

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def _check_fits(self, batch: dict[str, torch.Tensor]) -> None:
        if batch.keys() != self.tensors.keys():
            raise KeyError(f"batch keys {sorted(batch)} differ from the pool's {sorted(self.tensors)}")
        for key, value in batch.items():
            pooled = self.tensors[key]
            if value.shape[1:] != pooled.shape[1:] or value.dtype != pooled.dtype:
                raise ValueError(
                    f"{key!r} arrives as {value.dtype} {tuple(value.shape[1:])} per decision; "
                    f"the pool holds {pooled.dtype} {tuple(pooled.shape[1:])}"
                )


def _decisions(batch: dict[str, torch.Tensor]) -> int:
    sizes = {v.shape[0] for v in batch.values()}
    if len(sizes) != 1 or not batch:
        raise ValueError(f"a batch needs one leading decision axis shared by every tensor, got sizes {sorted(sizes)}")
    return sizes.pop()
