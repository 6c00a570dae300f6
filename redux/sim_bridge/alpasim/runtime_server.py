"""`redux serve-runtime`: minisim served as Alpasim's ``RuntimeService`` (daemon mode), over real gRPC.

A trainer asks a running Alpasim for rollouts with ``RuntimeService.simulate``:
which drivers to use (``available_drivers``, egodriver servers), which scenes
(``rollout_specs``) and how many sessions each driver may hold at once
(``n_concurrent_per_driver``). This server answers the same request with minisim as
the simulator, so an actor's daemon code path runs end to end without GPUs.

- Scenario ids: ``"<suite>/<scene id>"`` as ``get_runtime_info`` lists them (e.g.
  ``"minisim-test/7"``), or the bare integer scene id (``"7"``). A scene that is not
  one of the served suite's gives that spec's rollouts ``success = false`` with
  ``ROLLOUT_ERROR_CODE_INVALID_SCENE`` (as Alpasim does for an unknown scene).
- A malformed request is refused as a whole with INVALID_ARGUMENT: no driver, no
  spec, ``nr_rollouts`` = 0, ``session_uuids`` given but not exactly ``nr_rollouts``
  long, a session uuid used twice, ``n_concurrent_per_driver`` = 0.
- Rollouts are cut into batches of ``n_concurrent_per_driver`` sessions (in spec
  order); each driver plays one batch at a time (``MinisimRuntime``, exactly what
  `redux drive` does), taking the next batch when done, so no driver ever holds more
  than ``n_concurrent_per_driver`` sessions.
- A driver that fails (down, refuses the session, an unusable plan) fails its
  rollouts (``success = false``, ``error``, ``ROLLOUT_ERROR_CODE_UNSPECIFIED``); the
  call itself still returns.
- ``timestep_metrics`` carry every per-step metric of ``redux.eval`` under the names
  Alpasim's evaluator uses (collision_front/rear/lateral/any, offroad, wrong_lane,
  progress, dist_traveled_m, dist_to_gt_trajectory, gt_dist_traveled_m,
  min_distance_to_obstacle_m, min_ade@…, plan_deviation, eval_relevant, plus our
  close_encounter), warm-up included, each with its time aggregation; NaN values are
  sent as ``valid = false``. ``collision_at_fault`` is not sent: Alpasim derives it
  (front ∨ lateral), and so does ``redux.eval.alpasim``. ``aggregated_metrics`` are
  raw, as Alpasim's: each metric aggregated over every step (no warm-up removal, no
  at-fault flag, no truncation). ``rollout_uuid`` is the session uuid.
"""

from __future__ import annotations

import logging
import math
import queue
import signal
import threading
import uuid
from dataclasses import dataclass

import grpc
import numpy as np

from redux.config import RunConfig
from redux.eval.aggregation import aggregate_over_time
from redux.eval.metrics import TimestepMetrics
from redux.proto import common_pb2, runtime_pb2, runtime_pb2_grpc
from redux.sim_bridge.alpasim.grpc_server import bind, make_server
from redux.sim_bridge.alpasim.driver_server import GRPC_API_VERSION
from redux.sim_bridge.alpasim.runtime_client import DrivenRollout, DriverRefused, MinisimRuntime
from redux.sim_bridge.minisim.scoring import score_rollout
from redux.sim_bridge.minisim.suites import parse_suite, suite_scene_ids

log = logging.getLogger(__name__)

NOT_SENT = ("collision_at_fault",)  # Alpasim's evaluator does not send it; its aggregation derives it


@dataclass(frozen=True)
class RuntimeServerSettings:
    host: str = "127.0.0.1"
    port: int = 50052
    max_message_mb: int = 64
    workers: int = 16
    max_concurrent_rollouts: int = 64  # reported by get_runtime_info
    rpc_timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    drain_s: float = 30.0
    image_format: str = "jpeg"
    send_recording: bool = True


@dataclass
class _Unit:
    """One rollout to play."""

    index: int  # position in the answer
    spec: runtime_pb2.RolloutSpec
    scene_id: int
    session_uuid: str


def _version(name: str) -> common_pb2.VersionId:
    major, minor, patch = GRPC_API_VERSION
    return common_pb2.VersionId(version_id=name,
                                grpc_api_version=common_pb2.VersionId.APIVersion(major=major, minor=minor, patch=patch))  # fmt: skip


def timestep_metric_messages(metrics: TimestepMetrics) -> list[runtime_pb2.SimulationReturn.TimestepMetric]:
    """Our per-timestep table as Alpasim's ``timestep_metrics`` (NaN → valid false)."""
    messages = []
    for name, values in metrics.values.items():
        if name in NOT_SENT:
            continue
        values = np.asarray(values, dtype=np.float64)
        valid = ~np.isnan(values)
        messages.append(
            runtime_pb2.SimulationReturn.TimestepMetric(
                name=name, timestamps_us=metrics.timestamps_us.tolist(), values=np.where(valid, values, 0.0).tolist(),
                valid=valid.tolist(), time_aggregation=int(metrics.aggregation[name]),
            )  # fmt: skip
        )
    return messages


def raw_aggregated_metrics(metrics: TimestepMetrics) -> dict[str, float]:
    """Each sent metric over every step, as Alpasim's ``aggregated_metrics`` (no warm-up removal, no truncation)."""
    raw = {}
    for name, values in metrics.values.items():
        if name not in NOT_SENT:
            raw[name] = aggregate_over_time(np.asarray(values, dtype=np.float64), metrics.aggregation[name])
    return raw


def records_from_messages(messages) -> list[dict]:
    """``timestep_metrics`` messages as the plain dicts ``redux.eval.alpasim`` reads."""
    return [
        {"name": m.name, "timestamps_us": list(m.timestamps_us), "values": list(m.values), "valid": list(m.valid),
         "time_aggregation": int(m.time_aggregation)}
        for m in messages
    ]  # fmt: skip


class MinisimRuntimeService(runtime_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, cfg: RunConfig, suite: str, settings: RuntimeServerSettings = RuntimeServerSettings(),
                 on_shut_down=None):  # fmt: skip
        """``cfg.sim`` as it drives (cameras, episode length, …); ``suite`` NAME or NAME:N, the scenes served."""
        name, count = parse_suite(suite)
        cfg = cfg.model_copy(deep=True)
        cfg.sim.kind, cfg.sim.suite = "minisim", name
        cfg.sim.step_metrics = False
        cfg.sim.expert_labels = False
        self.cfg = cfg
        self.suite = name
        self.scene_ids = suite_scene_ids(name, count)
        self._known = set(self.scene_ids)
        self.settings = settings
        self.on_shut_down = on_shut_down
        limit = settings.max_message_mb * 1024 * 1024
        self.channel_options = [("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]

    # -- scenario ids ------------------------------------------------------------------
    def scene_of(self, scenario_id: str) -> int | None:
        """The scene id a scenario id names within the served suite, or None."""
        text = scenario_id.strip()
        suite, slash, number = text.rpartition("/")
        if slash and suite != self.suite:
            return None
        try:
            scene_id = int(number)
        except ValueError:
            return None
        return scene_id if scene_id in self._known else None

    # -- the contract ---------------------------------------------------------------
    def get_runtime_info(self, request, context):
        info = runtime_pb2.RuntimeInfo(
            max_supported_concurrent_rollouts=self.settings.max_concurrent_rollouts,
            nr_workers=self.settings.workers, renderer_type="minisim",
            runtime_version=_version(f"alpamayo-redux minisim-runtime {self.suite}"),
        )  # fmt: skip
        for scene_id in self.scene_ids:
            info.scenes.add(scene_id=f"{self.suite}/{scene_id}", provider_kind="minisim")
        return info

    def shut_down(self, request, context):
        if self.on_shut_down is not None:
            threading.Thread(target=self.on_shut_down, daemon=True).start()  # not from inside this call
        return common_pb2.Empty()

    def simulate(self, request: runtime_pb2.SimulationRequest, context):
        try:
            units = self._units(request)
        except ValueError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        answer = runtime_pb2.SimulationReturn(runtime_version=_version(f"alpamayo-redux minisim-runtime {self.suite}"))
        returns: list[runtime_pb2.SimulationReturn.RolloutReturn | None] = [None] * len(units)
        playable = []
        for unit in units:
            if unit.scene_id < 0:
                returns[unit.index] = runtime_pb2.SimulationReturn.RolloutReturn(
                    rollout_spec=unit.spec, success=False, rollout_uuid=unit.session_uuid,
                    error=f"no scene {unit.spec.scenario_id!r} in {self.suite} (ids: '{self.suite}/<id>' or '<id>')",
                    error_code=runtime_pb2.ROLLOUT_ERROR_CODE_INVALID_SCENE,
                )  # fmt: skip
            else:
                playable.append(unit)
        size = request.n_concurrent_per_driver
        batches: queue.Queue = queue.Queue()
        for first in range(0, len(playable), size):
            batches.put(playable[first : first + size])
        drivers = [f"{d.ip}:{d.port}" if ":" not in d.ip else f"[{d.ip}]:{d.port}" for d in request.available_drivers]
        workers = [threading.Thread(target=self._drive_batches, args=(address, batches, returns), daemon=True,
                                    name=f"minisim-runtime-{address}") for address in drivers]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        answer.rollout_returns.extend(returns)
        return answer

    # -- internals ----------------------------------------------------------------------
    def _units(self, request: runtime_pb2.SimulationRequest) -> list[_Unit]:
        if not request.available_drivers:
            raise ValueError("available_drivers is empty")
        if any(not d.ip or not 0 < d.port < 65536 for d in request.available_drivers):
            raise ValueError("every driver needs an ip and a port in 1..65535")
        if request.n_concurrent_per_driver < 1:
            raise ValueError("n_concurrent_per_driver must be ≥ 1")
        if not request.rollout_specs:
            raise ValueError("rollout_specs is empty")
        units, seen = [], set()
        for number, spec in enumerate(request.rollout_specs):
            if spec.nr_rollouts < 1:
                raise ValueError(f"rollout_specs[{number}] ({spec.scenario_id!r}): nr_rollouts must be ≥ 1")
            if spec.session_uuids and len(spec.session_uuids) != spec.nr_rollouts:
                raise ValueError(f"rollout_specs[{number}] ({spec.scenario_id!r}): {len(spec.session_uuids)} session_uuids "
                                 f"for nr_rollouts = {spec.nr_rollouts}; give exactly that many or none")  # fmt: skip
            scene_id = self.scene_of(spec.scenario_id)
            for k in range(spec.nr_rollouts):
                name = spec.session_uuids[k] if spec.session_uuids else str(uuid.uuid4())
                if not name or name in seen:
                    raise ValueError(f"session uuid {name!r} is empty or used twice")
                seen.add(name)
                units.append(_Unit(len(units), spec, -1 if scene_id is None else scene_id, name))
        return units

    def _drive_batches(self, address: str, batches: queue.Queue, returns: list) -> None:
        s = self.settings
        with grpc.insecure_channel(address, options=self.channel_options) as channel:
            runtime = MinisimRuntime(channel, self.cfg.sim, self.cfg.seed, s.image_format, s.send_recording, s.rpc_timeout_s)
            while True:
                try:
                    batch: list[_Unit] = batches.get_nowait()
                except queue.Empty:
                    return
                try:
                    driven = runtime.run([u.scene_id for u in batch], [u.session_uuid for u in batch])
                except DriverRefused as err:
                    for unit in batch:
                        returns[unit.index] = self._failed(unit, f"driver {address}: {err}")
                    continue
                except Exception as err:  # ours: fail these rollouts, keep the others going
                    log.exception("minisim runtime failed on a batch for driver %s", address)
                    for unit in batch:
                        returns[unit.index] = self._failed(unit, f"runtime error: {type(err).__name__}: {err}")
                    continue
                for unit, rollout in zip(batch, driven):
                    returns[unit.index] = self._returned(unit, rollout, address)

    @staticmethod
    def _failed(unit: _Unit, error: str) -> runtime_pb2.SimulationReturn.RolloutReturn:
        return runtime_pb2.SimulationReturn.RolloutReturn(
            rollout_spec=unit.spec, success=False, rollout_uuid=unit.session_uuid, error=error,
            error_code=runtime_pb2.ROLLOUT_ERROR_CODE_UNSPECIFIED,
        )  # fmt: skip

    def _returned(self, unit: _Unit, rollout: DrivenRollout, address: str) -> runtime_pb2.SimulationReturn.RolloutReturn:
        if rollout.error is not None:
            return self._failed(unit, f"driver {address}: {rollout.error}")
        sim, log_ = self.cfg.sim, rollout.log
        metrics = score_rollout(
            rollout.scene, sim.warmup_steps, np.stack(log_.ego), log_.plans, log_.plan_steps, log_.samples,
            episode_steps=sim.episode_steps, actor_states=np.stack(log_.actors),
        )  # fmt: skip
        answer = runtime_pb2.SimulationReturn.RolloutReturn(
            rollout_spec=unit.spec, success=True, rollout_uuid=unit.session_uuid,
            timestep_metrics=timestep_metric_messages(metrics),
            error_code=runtime_pb2.ROLLOUT_ERROR_CODE_NONE,
        )  # fmt: skip
        for name, value in raw_aggregated_metrics(metrics).items():
            if not math.isnan(value):
                answer.aggregated_metrics[name] = value
        return answer


class RuntimeServer:
    """A gRPC server holding a MinisimRuntimeService; ``port`` is the bound one (useful with port 0)."""

    def __init__(self, cfg: RunConfig, suite: str, settings: RuntimeServerSettings = RuntimeServerSettings()):
        self.settings = settings
        self.stopped = threading.Event()
        self.service = MinisimRuntimeService(cfg, suite, settings, on_shut_down=self.stop)
        self.server = make_server(settings.workers, settings.max_message_mb, "minisim-runtime")
        runtime_pb2_grpc.add_RuntimeServiceServicer_to_server(self.service, self.server)
        self.port, self.address = bind(self.server, settings.host, settings.port)

    def start(self) -> RuntimeServer:
        self.server.start()
        return self

    def stop(self, drain_s: float | None = None) -> None:
        """Refuse new calls, let those in flight (simulate calls) finish for up to ``drain_s``."""
        self.server.stop(self.settings.drain_s if drain_s is None else drain_s).wait()
        self.stopped.set()

    def __enter__(self) -> RuntimeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(0)


def serve_runtime_until_signal(server: RuntimeServer) -> None:
    """Serve until SIGINT/SIGTERM (then drain) or a ``shut_down`` call (main thread only)."""
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        while not stopping.wait(0.5):
            if server.stopped.is_set():
                return
        log.warning("stopping: draining simulate calls in flight (up to %.0f s)", server.settings.drain_s)
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
