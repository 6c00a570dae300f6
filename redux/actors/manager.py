"""Creates the rollout actors, keeps them busy, restarts the dead, shuts down.

In-flight work is bounded: at most ``actors.max_in_flight`` sample calls per
actor are outstanding, collected with ``ray.wait``. A failed call means the
actor died; Ray restarts it (``max_restarts``) and the next call carries the
newest weight handle, which the restarted replica loads before it samples.
"""

from __future__ import annotations

import logging
import time

import ray
from ray.exceptions import RayActorError, RayTaskError

from redux.actors.replica_pool import ReplicaPool, replica_name
from redux.actors.rollout_actor import RolloutActor
from redux.config import RunConfig
from redux.learner.weight_transport import WeightHandle

log = logging.getLogger(__name__)

SIM_SLOT = "sim_slot"  # custom resource a node offers per rollout actor it can host


class ActorsExhausted(RuntimeError):
    """An actor died more often than Ray may restart it: the run cannot go on as configured."""


class ActorManager:
    def __init__(
        self, cfg: RunConfig, redis_url: str, namespace: str, num_actors: int | None = None, first_episode: int = 0
    ):
        """``first_episode``: where every session's scene order starts; a resumed run passes the
        episode after the last one its learner trained on."""
        self.cfg = cfg
        self.first_episode = first_episode
        count = cfg.actors.num if num_actors is None else num_actors
        self.replicas = None
        names = None
        if cfg.policy.engine == "vllm" and cfg.policy.vllm.replicas:
            self.replicas = ReplicaPool(cfg, redis_url, namespace)
            names = [replica_name(namespace, i) for i in range(self.replicas.size)]
        remote = ray.remote(RolloutActor).options(
            num_cpus=cfg.actors.num_cpus,
            resources={SIM_SLOT: 1},
            max_restarts=cfg.actors.max_restarts,
            max_task_retries=0,
        )
        self.actors = [remote.remote(cfg, i, redis_url, namespace, names, first_episode) for i in range(count)]
        self.pending: dict[ray.ObjectRef, tuple[int, int]] = {}  # call → (actor index, version it carries)
        self.latest: WeightHandle | None = None
        self.versions = [-1] * count
        self.restarts = [0] * count
        self.incarnations = [0] * count
        self.env_steps = 0
        self.rollouts = 0
        self.failures: list[str] = []
        self.restart_checks: list[dict] = []  # first report of each restarted actor vs the version it was sent
        self._recovering: set[int] = set()
        self._published_at = 0.0
        self.publish_to_loaded_ms: float | None = None
        self.publish_to_replicas_loaded_ms: float | None = None

    @property
    def size(self) -> int:
        return len(self.actors)

    def set_weights(self, handle: WeightHandle) -> None:
        """Every call submitted from now on carries ``handle``."""
        self.latest = handle
        self._published_at = time.perf_counter()
        if self.replicas is not None:
            self.replicas.set_weights(handle)

    def pump(self, timeout_s: float) -> list[dict]:
        """Keep every actor busy, then collect what finished within ``timeout_s``."""
        if self.latest is None:
            raise RuntimeError("set_weights() must be called before the actors can sample")
        self._top_up()
        return self._collect(timeout_s)

    def drain(self, timeout_s: float) -> list[dict]:
        """Finish without cutting anything: collect in-flight samples, and let an actor
        that is still coming back from a crash produce once, so that every replica's
        final weight version is known rather than lost with the dead process."""
        reports, deadline = [], time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for index, actor in enumerate(self.actors):
                busy = any(i == index for i, _ in self.pending.values())
                if self.versions[index] < 0 and not busy:
                    self.pending[actor.sample.remote([self.latest])] = (index, self.latest.version)
            if not self.pending:
                break
            reports += self._collect(max(deadline - time.monotonic(), 0.0))
        return reports

    def _collect(self, timeout_s: float) -> list[dict]:
        if not self.pending:
            return []
        # return as soon as one call finishes (its actor must not idle), with whatever else is done
        ready, rest = ray.wait(list(self.pending), num_returns=1, timeout=timeout_s)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        reports = []
        for ref in ready:
            index, sent_version = self.pending.pop(ref)
            try:
                report = ray.get(ref)
            except RayActorError as err:
                self._on_actor_death(index, err)
                continue
            except RayTaskError as err:  # the actor lives on; the call failed (e.g. the buffer stayed full)
                self.failures.append(f"actor {index}: {err.cause!r}")
                log.warning("rollout actor %d: sample failed: %r", index, err.cause)
                continue
            self._recovering.discard(index)
            if report["incarnation"] > self.incarnations[index]:
                self._on_new_incarnation(index, report, sent_version)
            self.versions[index] = report["version"]
            self.env_steps += report["env_steps"]
            self.rollouts += report["rollouts"]
            reports.append(report)
        self._note_all_loaded()
        return reports

    def _on_new_incarnation(self, index: int, report: dict, sent_version: int) -> None:
        """The first report of a (re)started process: did it act with the weights it was sent?

        Incarnations are counted by the actor in Redis, so a restart is seen even
        when no call failed (the process died between calls and Ray queued the next).
        """
        self.incarnations[index] = report["incarnation"]
        if report["incarnation"] > 1:
            self.restarts[index] = max(self.restarts[index], report["incarnation"] - 1)
            self.restart_checks.append(
                {"actor": index, "loaded_version": report["version"], "current_version": sent_version}
            )

    def _on_actor_death(self, index: int, err: RayActorError) -> None:
        self.versions[index] = -1
        self.failures.append(f"actor {index}: {type(err).__name__}")
        if index in self._recovering:  # further calls that were queued on the dead process
            return
        self.restarts[index] += 1
        self._recovering.add(index)
        if self.restarts[index] > self.cfg.actors.max_restarts:
            raise ActorsExhausted(f"rollout actor {index} died more than actors.max_restarts times") from err
        log.warning("rollout actor %d died (%s); Ray restarts it", index, type(err).__name__)

    def _top_up(self) -> None:
        in_flight = [0] * self.size
        for index, _ in self.pending.values():
            in_flight[index] += 1
        for index, actor in enumerate(self.actors):
            for _ in range(self.cfg.actors.max_in_flight - in_flight[index]):
                self.pending[actor.sample.remote([self.latest])] = (index, self.latest.version)

    def _note_all_loaded(self) -> None:
        """Publish → every actor acting with it: the latency users feel; and, with shared
        replicas, publish → every replica serving it."""
        if self.replicas is not None:
            loaded = self.replicas.loaded_ms()
            if loaded is not None:
                self.publish_to_replicas_loaded_ms = loaded
        if self._published_at and min(self.versions) >= self.latest.version:
            self.publish_to_loaded_ms = (time.perf_counter() - self._published_at) * 1e3
            self._published_at = 0.0

    def pids(self) -> list[int]:
        return ray.get([a.pid.remote() for a in self.actors])

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)
        self.actors = []
        self.pending.clear()
        if self.replicas is not None:
            self.replicas.shutdown()
