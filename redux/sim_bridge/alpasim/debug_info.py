"""``DriveResponse.debug_info.unstructured_debug_info``: a msgpack map, never pickle.

Upstream drivers put a serialized dict there; ours is msgpack so that anything may
read it back without executing what it reads. Keys a reader may find (per sample
lists have one entry per sampled plan, sample 0 being the driven one):

- ``reasoning``: the reasoning text of each sample (empty strings without reasoning);
- ``decision`` / ``decision_name``: the stated driving decision (−1 / "" when none);
- ``meta_actions``: the stated (longitudinal, lateral, lane) meta-actions, ``plan_meta_actions``
  those of the plan itself, ``consistent`` whether they agree, ``thinking`` whether a
  CF-VLA trace critiqued itself;
- ``latency_ms``: the server's wall time for this drive call; ``policy_ms``: the batched
  policy call's timings; ``batch_size``: observations in that call; ``weight_version``;
- ``warming_up``: true on the empty answers before the session has enough history.
"""

from __future__ import annotations

import msgpack
import numpy as np

from redux.policy.interface import PolicyOutput
from redux.sim_bridge.minisim.vocabulary import DECISIONS

_PER_SAMPLE_EXTRAS = {
    "decision": "decision",
    "stated_meta_actions": "meta_actions",
    "plan_meta_actions": "plan_meta_actions",
    "consistent": "consistent",
    "thinking": "thinking",
}


def encode_debug_info(info: dict) -> bytes:
    return msgpack.packb(info, use_bin_type=True)


def decode_debug_info(data: bytes) -> dict:
    """The map another driver (or ours) sent; {} when the bytes are not a msgpack map."""
    try:
        info = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # any bytes may arrive from any driver; unreadable ones simply say nothing
        return {}
    return info if isinstance(info, dict) else {}


def policy_debug_info(output: PolicyOutput, latency_ms: float) -> dict:
    """What one observation's row of a policy output says beyond its plans (plain msgpack types)."""
    info: dict = {
        "reasoning": list(output.reasoning) if output.reasoning is not None else [],
        "latency_ms": latency_ms,
        "policy_ms": {name: float(ms) for name, ms in output.timings.items()},
        "weight_version": int(output.weight_version),
    }
    if "batch_size" in output.extras:  # the server's own note on the batched call
        info["batch_size"] = int(output.extras["batch_size"][0])
    for extra, key in _PER_SAMPLE_EXTRAS.items():
        if extra in output.extras:
            info[key] = np.asarray(output.extras[extra])[0].tolist()
    if "decision" in info:
        info["decision_name"] = [DECISIONS[d] if 0 <= d < len(DECISIONS) else "" for d in info["decision"]]
    return info
