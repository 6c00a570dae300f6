"""Rollout records → one training batch.

Records hold per-step arrays with a leading step axis; a batch is their
concatenation along that axis, keeping only the tensors the objective reads.
Decoded record arrays own their memory, so a lone record's arrays become tensors
without a copy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from redux.buffer.codec import RolloutRecord


def collate(records: Sequence[RolloutRecord], keys: Sequence[str]) -> dict[str, torch.Tensor]:
    if not records:
        raise ValueError("cannot collate an empty list of records")
    batch = {}
    for key in keys:
        missing = [r.key for r in records if key not in r.tensors]
        if missing:
            raise KeyError(f"records {missing} carry no tensor {key!r}, which the objective needs")
        arrays = [r.tensors[key] for r in records]
        batch[key] = torch.from_numpy(arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
    return batch
