"""A rollout actor's view of shared policy replicas: the policy interface, served elsewhere.

The router sends each ``act`` to one replica, chosen by the caller's id so that the
callers spread evenly and a replica sees the same callers (their requests batch
together); if that replica is dead, the call goes to the next live one, and a dead
replica is tried again once Ray has restarted it. The router holds no model: what a
record stores (frames at the model's size, reasoning targets) comes from the preset and
the tokenizer alone.
"""

from __future__ import annotations

import logging
import time

import ray
from ray.exceptions import RayActorError

from redux.config import PolicyConfig
from redux.learner.weight_transport import WeightHandle
from redux.policy.interface import PolicyOutput

log = logging.getLogger(__name__)

class NoReplicaAvailable(RuntimeError):
    """Every shared replica stayed unreachable for the configured time."""


class RoutedPolicy:
    def __init__(self, cfg: PolicyConfig, caller_id: int, replica_names: list[str], retry_s: float = 120.0):
        from redux.policy.alpamayo.factory import tokenizer_for
        from redux.policy.alpamayo.presets import get_preset
        from redux.policy.alpamayo.prompt import PromptBuilder
        from redux.policy.text_tokenizer import token_ids

        self.cfg = cfg
        self.preset = get_preset(cfg.preset)
        self.tokenizer = tokenizer_for(cfg)
        self.ids = token_ids(self.tokenizer)
        self.prompts = PromptBuilder(self.preset, self.tokenizer, self.ids)
        self.caller_id = caller_id
        self.replica_names = replica_names
        self.retry_s = retry_s
        self.latest: WeightHandle | None = None
        self.weight_version = -1  # the version of the last output
        self.failovers = 0

    def follow(self, handle: WeightHandle) -> None:
        """Calls from now on carry ``handle``: the replica loads it before acting if behind."""
        self.latest = handle

    def model_inputs(self, observations):
        from redux.policy.alpamayo.policy import model_inputs

        return model_inputs(self.prompts, observations)

    def act(self, observations: list, num_samples: int = 1, greedy: bool = False) -> PolicyOutput:
        if self.latest is None:
            raise RuntimeError("follow() must name the weights before the shared replicas can act")
        count = len(self.replica_names)
        deadline = time.monotonic() + self.retry_s
        attempt = 0
        while True:
            index = (self.caller_id + attempt) % count
            try:
                replica = ray.get_actor(self.replica_names[index])
                out = ray.get(replica.act.remote([self.latest], observations, num_samples, greedy))
            except (RayActorError, ValueError) as err:  # dead / restarting, or not registered yet
                if time.monotonic() > deadline:
                    raise NoReplicaAvailable(f"no shared policy replica answered for {self.retry_s:.0f} s") from err
                self.failovers += 1
                log.warning("policy replica %d unavailable (%s); trying the next", index, type(err).__name__)
                attempt += 1
                if attempt % count == 0:
                    time.sleep(0.5)  # all tried: give Ray time to restart one
                continue
            self.weight_version = out.weight_version
            return out
