"""Rollouts from an Alpasim runtime in daemon mode (``RuntimeService.simulate``) driving OUR policy.

The generator holds the policy replica and serves it in-process as an egodriver
server on a free loopback port (``DriverServer``). Each ``generate`` call asks the
runtime at ``runtime_address`` for one whole rollout per session
(``sim.sessions_per_actor`` of them, ``n_concurrent_per_driver`` = that many, our
server the only driver, session uuids chosen here), and blocks until they finish.
While the runtime drives, the server's ``on_drive`` hook keeps, per session, what
each drive call's policy saw and did (model inputs, plan, log-prob); afterwards every
successful rollout becomes one :class:`RolloutRecord` in the format of
``BehaviourCloningGenerator``, and the official numbers are recomputed from the
returned ``timestep_metrics`` with ``redux.eval.alpasim`` (warm-up dropped, at-fault
= front ∨ lateral, truncated at the first incident); they are in ``last_summary``.

What differs from the in-process generators, because Alpasim gives no more:
- ``target_actions``: the recorded drive's own controls for 6.4 s onwards from its pose
  nearest the car (the runtime's ground truth, ``labels["recorded_actions"]``),
  normalised (log-replay cloning, not the rule-based expert); NaN where the runtime
  sent no recording;
- ``reward`` per drive call, from the timestep metrics 0.1 s later: progress gained
  − 10·collision_any − 5·offroad − 0.01·dist_to_gt_trajectory (NVIDIA's closed-loop
  GRPO weights, progress along the recorded path);
- ``done`` is true on a rollout's last drive call; ``num_steps`` is not used: a
  rollout is a whole Alpasim episode.

Runtime: ``redux serve-runtime`` (minisim) for development, a real Alpasim runtime
(its daemon mode) in deployment; both only need ``runtime_address``.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

import grpc
import numpy as np

from redux.actors.generators.behaviour_cloning import GenerationStats
from redux.buffer.codec import RolloutRecord
from redux.config import RunConfig
from redux.eval.aggregation import rollout_scores
from redux.eval.alpasim import summarize_alpasim, timestep_metrics_from_alpasim
from redux.policy.action_space import HORIZON, clip_to_bounds, normalise
from redux.proto import common_pb2, runtime_pb2, runtime_pb2_grpc
from redux.sim_bridge.alpasim.runtime_server import records_from_messages
from redux.sim_bridge.alpasim.serve import DriverServer
from redux.sim_bridge.alpasim.settings import DriverServerSettings
from redux.sim_bridge.minisim.session import COLLISION_PENALTY, OFFROAD_PENALTY, PATH_DISTANCE_PENALTY

STEP_US = 100_000


@dataclass
class _Drive:
    """What one drive call's policy saw and did."""

    now_us: int
    tensors: dict[str, np.ndarray]


@dataclass
class DaemonRollout:
    """One rollout as the runtime returned it, with what our server recorded of it."""

    session_uuid: str
    scenario_id: str
    success: bool
    error: str
    timestep_metrics: list[dict]  # redux.eval.alpasim's plain dicts
    aggregated_metrics: dict[str, float]
    drives: list[_Drive] = field(default_factory=list)


class AlpasimDaemonGenerator:
    def __init__(self, cfg: RunConfig, actor_id: int, policy=None, runtime_address: str | None = None,
                 cameras: tuple[str, ...] | None = None, greedy: bool = False, simulate_timeout_s: float = 3600.0,
                 connect_timeout_s: float = 30.0, first_episode: int = 0):  # fmt: skip
        """``policy``: as BehaviourCloningGenerator's (None builds a replica); ``cameras``: those the server
        asks of each session (default: those the policy reads); ``greedy``: act greedily (evaluation)."""
        self.cfg = cfg
        self.actor_id = actor_id
        if policy is None:
            from redux.policy.torch_engine import make_policy_replica

            policy = make_policy_replica(cfg.policy, cfg.sim, seed=cfg.seed + actor_id)
        self.policy = policy
        self.runtime_address = runtime_address or cfg.actors.runtime_address
        self.simulate_timeout_s = simulate_timeout_s
        self.episodes = first_episode  # a resumed run goes on to the scenes after those already driven
        self.last_summary: dict[str, float] = {}
        self.last_rollouts: list[DaemonRollout] = []
        self._drives: dict[str, list[_Drive]] = {}
        self._lock = threading.Lock()
        settings = DriverServerSettings(host="127.0.0.1", port=0, greedy=greedy,
                                        max_batch=max(cfg.sim.sessions_per_actor, 1))  # fmt: skip
        self.server = DriverServer(policy, settings, cfg.policy.num_samples, f"actor {actor_id}", cameras=cameras,
                                   on_drive=self._on_drive).start()  # fmt: skip
        limit = settings.max_message_mb * 1024 * 1024
        self.channel = grpc.insecure_channel(
            self.runtime_address,
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        try:
            grpc.channel_ready_future(self.channel).result(timeout=connect_timeout_s)
        except grpc.FutureTimeoutError:
            self.close()
            raise ConnectionError(f"no Alpasim runtime answers at {self.runtime_address}") from None
        self.runtime = runtime_pb2_grpc.RuntimeServiceStub(self.channel)
        info = self.runtime.get_runtime_info(common_pb2.Empty(), timeout=connect_timeout_s)
        self.scenario_ids = [scene.scene_id for scene in info.scenes]
        if not self.scenario_ids:
            self.close()
            raise ValueError(f"the runtime at {self.runtime_address} lists no scenes")

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0)

    # -- the recording hook (gRPC threads) ------------------------------------------------
    def _model_inputs(self, observation) -> dict[str, np.ndarray]:
        if hasattr(self.policy, "model_inputs"):
            return {name: value[0] for name, value in self.policy.model_inputs([observation]).items()}
        inputs = {"ego_history": observation.ego_history.astype(np.float32), "route": observation.route}
        return inputs | {name: frames for name, frames in observation.cameras.items()}

    def _on_drive(self, session, observation, output, now_us: int) -> None:
        recorded = observation.labels.get("recorded_actions")
        target = (normalise(clip_to_bounds(recorded)) if recorded is not None
                  else np.full((HORIZON, 2), np.nan, np.float32))  # fmt: skip
        tensors = {
            **self._model_inputs(observation),
            "target_actions": target,
            "plan_actions": np.asarray(output.actions[0, 0], dtype=np.float32),
            "log_prob": np.float32(output.log_probs[0, 0]),
        }
        with self._lock:
            self._drives.setdefault(session.session_uuid, []).append(_Drive(now_us, tensors))

    # -- one round ---------------------------------------------------------------------------
    def _scenario(self, session: int) -> str:
        """Sessions of all actors interleave over the scenes, as BehaviourCloningGenerator's do."""
        sessions = self.cfg.actors.num * self.cfg.sim.sessions_per_actor
        index = self.actor_id * self.cfg.sim.sessions_per_actor + session + sessions * self.episodes
        return self.scenario_ids[index % len(self.scenario_ids)]

    def simulate(self, scenario_ids: list[str], session_uuids: list[str] | None = None,
                 n_concurrent: int | None = None) -> list[DaemonRollout]:  # fmt: skip
        """One ``RuntimeService.simulate`` call, a rollout per scenario, driven by our server."""
        if session_uuids is None:
            session_uuids = [f"actor{self.actor_id}-{uuid.uuid4().hex}" for _ in scenario_ids]
        request = runtime_pb2.SimulationRequest(n_concurrent_per_driver=n_concurrent or len(scenario_ids))
        request.available_drivers.add(ip="127.0.0.1", port=self.server.port)
        for scenario, name in zip(scenario_ids, session_uuids, strict=True):
            request.rollout_specs.add(scenario_id=scenario, nr_rollouts=1, session_uuids=[name])
        answer = self.runtime.simulate(request, timeout=self.simulate_timeout_s)
        rollouts = []
        with self._lock:
            drives = {name: self._drives.pop(name, []) for name in session_uuids}
        for returned in answer.rollout_returns:
            name = returned.rollout_uuid
            rollouts.append(DaemonRollout(
                name, returned.rollout_spec.scenario_id, returned.success, returned.error,
                records_from_messages(returned.timestep_metrics), dict(returned.aggregated_metrics),
                sorted(drives.get(name, []), key=lambda d: d.now_us),
            ))  # fmt: skip
        return rollouts

    def generate(self, num_steps: int | None = None) -> tuple[list[RolloutRecord], GenerationStats]:
        """One whole rollout per session; one record per successful rollout."""
        stats = GenerationStats()
        size = self.cfg.sim.sessions_per_actor
        started = time.perf_counter()
        rollouts = self.simulate([self._scenario(i) for i in range(size)], n_concurrent=size)
        stats.sim_ms = (time.perf_counter() - started) * 1e3
        self.episodes += 1
        self.last_rollouts = rollouts
        good = [r for r in rollouts if r.success and r.drives]
        self.last_summary = summarize_alpasim([r.timestep_metrics for r in good]) if good else {}
        records = []
        for session, rollout in enumerate(rollouts):
            if not (rollout.success and rollout.drives):
                continue
            table = timestep_metrics_from_alpasim(rollout.timestep_metrics)
            scores = rollout_scores(table)
            stats.episodes += 1
            stats.env_steps += len(rollout.drives)
            stats.collisions += int(scores.get("collision_at_fault", 0.0) > 0)
            stats.offroad += int(scores.get("offroad", 0.0) > 0)
            stats.progress.append(float(scores.get("progress", float("nan"))))
            records.append(self._record(session, rollout, table))
        return records, stats

    def _record(self, session: int, rollout: DaemonRollout, table) -> RolloutRecord:
        names = rollout.drives[0].tensors.keys()
        tensors = {name: np.stack([d.tensors[name] for d in rollout.drives]) for name in names}
        tensors["reward"] = _rewards(table, [d.now_us for d in rollout.drives])
        done = np.zeros(len(rollout.drives), dtype=bool)
        done[-1] = True
        tensors["done"] = done
        return RolloutRecord(
            actor_id=self.actor_id, session=session, episode=self.episodes - 1, step_start=0,
            weight_version=self.policy.weight_version, created_s=time.time(), tensors=tensors,
            scalars={"generator": "alpasim", "scenario_id": rollout.scenario_id, "session_uuid": rollout.session_uuid},
        )  # fmt: skip


def _rewards(table, drive_times_us: list[int]) -> np.ndarray:
    """Per drive call: progress gained − penalties, read 0.1 s after the call (the state its plan led to)."""
    times = table.timestamps_us
    values = table.values

    def at(name: str, t: int) -> float:
        k = min(int(np.searchsorted(times, t)), len(times) - 1)
        return float(np.nan_to_num(values[name][k])) if name in values else 0.0

    rewards = []
    for now in drive_times_us:
        after = now + STEP_US
        gained = at("progress", after) - at("progress", now)
        collision = max(at("collision_front", after), at("collision_rear", after), at("collision_lateral", after))
        rewards.append(gained - COLLISION_PENALTY * collision - OFFROAD_PENALTY * at("offroad", after)
                       - PATH_DISTANCE_PENALTY * at("dist_to_gt_trajectory", after))  # fmt: skip
    return np.asarray(rewards, dtype=np.float32)
