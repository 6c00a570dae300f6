"""`redux serve-driver`: start an egodriver server for one policy, stop it with a graceful drain.

The policy is a reference policy or a run/checkpoint of ours (``--policy``, as
``redux eval`` takes it), or an Alpamayo preset (``--preset``), optionally with
published weights (``--checkpoint`` a safetensors directory). The server binds
loopback unless told otherwise, raises gRPC's 4 MiB message limit to 64 MiB both
ways (1080p PNG frames exceed the default), and on SIGINT/SIGTERM stops taking new
calls, lets the calls in flight finish (up to ``drain_s``) and returns.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path


from redux.config import RunConfig
from redux.proto import egodriver_pb2_grpc
from redux.sim_bridge.alpasim.grpc_server import bind, make_server
from redux.sim_bridge.alpasim.driver_server import DriveHook, EgodriverServicer, TerminationHook
from redux.sim_bridge.alpasim.settings import DriverServerSettings

log = logging.getLogger(__name__)


def cameras_read_by(policy) -> tuple[str, ...]:
    """The logical camera ids a policy reads: an Alpamayo preset's cameras, the BEV planner's raster, or none."""
    preset = getattr(policy, "preset", None)
    if preset is not None:
        return tuple(preset.cameras)
    if getattr(getattr(policy, "cfg", None), "kind", None) == "bev-planner":
        from redux.policy.inputs import BEV_CAMERA

        return (BEV_CAMERA,)
    return ()


def load_served_policy(cfg: RunConfig, policy: str | None = None, preset: str | None = None,
                       checkpoint: Path | None = None) -> tuple[object, str]:  # fmt: skip
    """The policy to serve and a name for it. ``policy``: as `redux eval --policy`; ``preset``: an Alpamayo
    preset, with ``checkpoint`` its published weights; ``checkpoint`` alone: a run or checkpoint of ours."""
    from redux.policy.loading import find_weights, make_policy

    if (policy is not None) + (preset is not None or checkpoint is not None) != 1:
        raise ValueError("name the policy once: --policy NAME|PATH, or --preset NAME [--checkpoint DIR], or --checkpoint PATH")
    if policy is not None:
        return make_policy(policy, cfg), policy
    if preset is None:
        try:
            find_weights(checkpoint)
        except FileNotFoundError:
            raise ValueError(f"{checkpoint} is not a checkpoint of ours; published weights need --preset") from None
        return make_policy(str(checkpoint), cfg), str(checkpoint)
    from redux.policy.torch_engine import make_policy_replica

    served = cfg.policy.model_copy(update={"kind": "alpamayo", "preset": preset,
                                           "checkpoint": None if checkpoint is None else str(checkpoint)})  # fmt: skip
    name = preset if checkpoint is None else f"{preset} from {checkpoint}"
    return make_policy_replica(served, cfg.sim, seed=cfg.seed), name


class DriverServer:
    """A gRPC server holding one EgodriverServicer; ``port`` is the bound one (useful with port 0)."""

    def __init__(self, policy, settings: DriverServerSettings, num_samples: int = 1, name: str = "policy",
                 cameras: tuple[str, ...] | None = None, terminate: TerminationHook | None = None,
                 on_drive: DriveHook | None = None):  # fmt: skip
        self.settings = settings
        self.servicer = EgodriverServicer(
            policy, cameras_read_by(policy) if cameras is None else cameras, num_samples, settings, terminate,
            version_id=f"alpamayo-redux {name}", on_drive=on_drive,
        )
        self.server = make_server(settings.workers, settings.max_message_mb, "egodriver")
        egodriver_pb2_grpc.add_EgodriverServiceServicer_to_server(self.servicer, self.server)
        self.port, self.address = bind(self.server, settings.host, settings.port)

    def start(self) -> DriverServer:
        self.server.start()
        return self

    def stop(self, drain_s: float | None = None) -> None:
        """Refuse new calls, let those in flight finish for up to ``drain_s``, then cancel the rest."""
        self.server.stop(self.settings.drain_s if drain_s is None else drain_s).wait()

    def __enter__(self) -> DriverServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_until_signal(server: DriverServer) -> None:
    """Serve until SIGINT or SIGTERM, then drain (main thread only: that is where signals arrive)."""
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        while not stopping.wait(0.5):  # short waits: the main thread must keep returning to run signal handlers
            pass
        log.warning("stopping: draining calls in flight (up to %.0f s)", server.settings.drain_s)
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
