"""The knobs of `redux serve-driver` and `redux drive`, each default defined here once.

Plain pydantic (no gRPC, no torch), so the CLI can show these defaults without
importing the server. The policy's and the simulator's own settings stay in
``RunConfig`` (``--config`` / ``--set``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DriverServerSettings(BaseModel):
    """How `redux serve-driver` serves."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 exposes the server to the network")
    port: int = Field(50051, ge=0, le=65535, description="0: any free port")
    max_batch: int = Field(8, ge=1, description="drive calls of concurrent sessions batched into one policy call")
    max_wait_ms: float = Field(5.0, ge=0.0, description="how long a drive call waits for others to join its batch")
    greedy: bool = Field(True, description="act greedily, as `redux eval` does; False samples (RL rollouts)")
    frames_per_camera: int = Field(4, ge=1, description="frames per camera handed to the policy, newest last")
    warmup_history_s: float = Field(1.5, ge=0.0, description="egomotion span before the first plan; empty plans before")
    max_message_mb: int = Field(64, ge=4, description="gRPC send/receive limit")
    workers: int = Field(32, ge=2, description="gRPC worker threads (a batch needs max_batch of them at once)")
    drain_s: float = Field(10.0, ge=0.0, description="on shutdown, how long calls in flight may still finish")


class DriveSettings(BaseModel):
    """How `redux drive` plays the Alpasim runtime."""

    model_config = ConfigDict(extra="forbid")

    concurrent: int | None = Field(None, ge=1, description="sessions driven together; None: sim.sessions_per_actor")
    cameras: list[str] | None = Field(
        None, description="cameras rendered and sent; None: sim.cameras if set, else every minisim camera"
    )
    image_format: Literal["jpeg", "png"] = Field(
        "jpeg", description="RGB cameras as Alpasim sends them (jpeg, quality 95) or lossless; the BEV is always PNG"
    )
    send_recording: bool = Field(True, description="send the recorded drive (ground truth) at the hand-over")
    rpc_timeout_s: float = Field(120.0, gt=0.0)
    connect_timeout_s: float = Field(30.0, gt=0.0, description="how long to wait for the driver to answer at all")
    max_message_mb: int = Field(64, ge=4)
