"""Live view of a running job, fed only by Redis: the stats stream and buffer counters.

The driver of ``redux run`` and a second terminal running ``redux console``
read the same data, so what one shows the other shows too. On a terminal the
view is a rich table refreshed every ``console.refresh_s``; elsewhere (CI,
``ray job submit`` logs) the same figures are printed as plain log lines.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import asdict
from typing import IO

from rich.console import Console as RichConsole
from rich.live import Live
from rich.table import Table

from redux.buffer.connection import connect
from redux.buffer.rollout_buffer import BufferStats, RolloutBuffer
from redux.buffer.stats_channel import StatsChannel
from redux.config import ConsoleConfig, RunConfig

WINDOW_S = 10.0


class RunStats:
    """Folds telemetry messages into the figures the console shows."""

    def __init__(self) -> None:
        self.started = time.time()
        self.first_rollout: float | None = None  # rates count from here, not from start-up
        self.env_steps = 0
        self.rollouts = 0
        self.episodes = 0
        self.collisions = 0
        self.actor_versions: dict[int, int] = {}
        self.actor_restarts: dict[int, int] = {}
        self.reasoning_tokens = 0
        # what serves each decision's reasoning: "a<i>" an actor's own vLLM engine, "r<i>" a shared replica
        self.served_versions: dict[str, int] = {}
        self.replicas: dict[int, dict] = {}
        self.learner: dict = {}
        self.driver: dict = {}
        self._window: deque[tuple[float, int, int]] = deque()

    def ingest(self, message: dict) -> None:
        source = message.get("source")
        now = float(message.get("time", time.time()))
        if source == "actor":
            if self.first_rollout is None:
                self.first_rollout = now - float(message.get("sample_s", 0.0))
            self.env_steps += int(message["env_steps"])
            self.rollouts += int(message["rollouts"])
            self.episodes += int(message.get("episodes", 0))
            self.collisions += int(message.get("collisions", 0))
            self.actor_versions[int(message["actor"])] = int(message["version"])
            self.reasoning_tokens += int(message.get("reasoning_tokens", 0))
            if message.get("served_version") is not None:
                self.served_versions[f"a{message['actor']}"] = int(message["served_version"])
            self._window.append((now, self.env_steps, self.rollouts))
        elif source == "replica":
            self.replicas[int(message["replica"])] = message
            self.served_versions[f"r{message['replica']}"] = int(message["served_version"])
        elif source == "learner":
            self.learner = message
        elif source == "driver":
            self.driver = message
            self.actor_restarts = {int(k): int(v) for k, v in message.get("restarts", {}).items()}

    def _rates(self, now: float) -> tuple[float, float]:
        while self._window and now - self._window[0][0] > WINDOW_S:
            self._window.popleft()
        if len(self._window) < 2:
            return 0.0, 0.0
        (t0, s0, r0), (t1, s1, r1) = self._window[0], self._window[-1]
        span = max(t1 - t0, 1e-6)
        return (s1 - s0) / span, (r1 - r0) / span

    def snapshot(self, buffer: BufferStats | None) -> dict:
        now = time.time()
        rolling = max(now - (self.first_rollout or now), 1e-6)
        steps_10s, rollouts_10s = self._rates(now)
        return {
            "elapsed_s": now - self.started,
            "rolling_s": rolling,
            "env_steps": self.env_steps,
            "env_steps_per_s_10s": steps_10s,
            "env_steps_per_s": self.env_steps / rolling if self.env_steps else 0.0,
            "rollouts_per_s_10s": rollouts_10s,
            "episodes": self.episodes,
            "collisions": self.collisions,
            "actor_versions": dict(sorted(self.actor_versions.items())),
            "actor_restarts": dict(sorted(self.actor_restarts.items())),
            "reasoning_tokens": self.reasoning_tokens,
            "reasoning_tokens_per_s": self.reasoning_tokens / rolling if self.reasoning_tokens else 0.0,
            "served_versions": dict(sorted(self.served_versions.items())),
            "replica_restarts": sum(int(m.get("incarnation", 1)) - 1 for m in self.replicas.values()),
            "replica_mean_batch": {i: m["mean_batch"] for i, m in sorted(self.replicas.items())},
            "learner_step": self.learner.get("step", 0),
            "learner_steps_total": self.learner.get("steps_total"),
            "learner_version": self.learner.get("version", 0),
            "loss": self.learner.get("loss"),
            "learner_steps_per_s": self.learner.get("steps_per_s"),
            "staleness_mean": self.learner.get("staleness_mean"),
            "staleness_max": self.learner.get("staleness_max"),
            "publish_ms": self.learner.get("publish_ms"),
            "publish_to_loaded_ms": self.driver.get("publish_to_loaded_ms"),
            "publish_to_replicas_loaded_ms": self.driver.get("publish_to_replicas_loaded_ms"),
            "buffer": asdict(buffer) if buffer is not None else {},
        }


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _progress(snap: dict) -> str:
    total = snap["learner_steps_total"]
    if not total:
        return str(snap["learner_step"])
    filled = round(10 * snap["learner_step"] / total)
    return f"{'█' * filled}{'░' * (10 - filled)} {snap['learner_step']}/{total}"


def render_table(snap: dict, title: str) -> Table:
    table = Table(title=title, show_header=False, expand=False)
    table.add_column("figure", style="cyan")
    table.add_column("value", justify="right")
    table.add_column("figure", style="cyan")
    table.add_column("value", justify="right")
    buf = snap["buffer"]
    rows = [
        ("env steps/s (10 s)", snap["env_steps_per_s_10s"], "env steps/s (all)", snap["env_steps_per_s"]),
        ("rollouts/s (10 s)", snap["rollouts_per_s_10s"], "env steps", snap["env_steps"]),
        ("buffer depth", buf.get("depth"), "pending (taken, not acked)", buf.get("pending")),
        ("produced", buf.get("produced"), "consumed", buf.get("consumed")),
        ("acked", buf.get("acked"), "reclaimed", buf.get("reclaimed")),
        ("dead-lettered", buf.get("dead_lettered"), "dropped stale", buf.get("dropped_stale")),
        ("staleness mean", snap["staleness_mean"], "staleness max", snap["staleness_max"]),
        ("learner step", _progress(snap), "learner steps/s", snap["learner_steps_per_s"]),
        ("loss", snap["loss"], "weight version", snap["learner_version"]),
        ("last publish ms", snap["publish_ms"], "publish→all loaded ms", snap["publish_to_loaded_ms"]),
        ("episodes", snap["episodes"], "at-fault collisions", snap["collisions"]),
    ]
    for a, va, b, vb in rows:
        table.add_row(a, _fmt(va), b, _fmt(vb))
    versions = " ".join(f"{k}:v{v}" for k, v in snap["actor_versions"].items()) or "–"
    restarts = sum(snap["actor_restarts"].values())
    table.add_row("actor versions", versions, "actor restarts", str(restarts))
    if snap["served_versions"] or snap["reasoning_tokens"]:
        served = " ".join(f"{k}:v{v}" for k, v in snap["served_versions"].items()) or "–"
        table.add_row("served versions", served, "reasoning tokens/s", _fmt(snap["reasoning_tokens_per_s"]))
    if snap["replica_mean_batch"]:
        batches = " ".join(f"r{k}:{v:.1f}" for k, v in snap["replica_mean_batch"].items())
        table.add_row("replica mean batch", batches, "replica restarts", str(snap["replica_restarts"]))
        table.add_row("publish→replicas loaded ms", _fmt(snap["publish_to_replicas_loaded_ms"]), "", "")
    return table


def log_line(snap: dict) -> str:
    buf = snap["buffer"]
    versions = ",".join(f"{k}:v{v}" for k, v in snap["actor_versions"].items())
    return (
        f"[{snap['elapsed_s']:7.1f}s] steps/s10={snap['env_steps_per_s_10s']:.1f} steps/s={snap['env_steps_per_s']:.1f} "
        f"rollouts/s10={snap['rollouts_per_s_10s']:.2f} depth={buf.get('depth')} produced={buf.get('produced')} "
        f"consumed={buf.get('consumed')} acked={buf.get('acked')} dead={buf.get('dead_lettered')} "
        f"stale={buf.get('dropped_stale')} staleness={_fmt(snap['staleness_mean'])}/{_fmt(snap['staleness_max'])} "
        f"step={snap['learner_step']}/{snap['learner_steps_total']} loss={_fmt(snap['loss'])} steps/s={_fmt(snap['learner_steps_per_s'])} "
        f"version={snap['learner_version']} actors=[{versions}] restarts={sum(snap['actor_restarts'].values())} "
        f"publish_ms={_fmt(snap['publish_ms'])} publish_to_loaded_ms={_fmt(snap['publish_to_loaded_ms'])}"
        + _served_part(snap)
    )


def _served_part(snap: dict) -> str:
    if not (snap["served_versions"] or snap["reasoning_tokens"]):
        return ""
    served = ",".join(f"{k}:v{v}" for k, v in snap["served_versions"].items())
    line = f" served=[{served}] tokens/s={_fmt(snap['reasoning_tokens_per_s'])}"
    if snap["replica_mean_batch"]:
        line += f" replicas_loaded_ms={_fmt(snap['publish_to_replicas_loaded_ms'])}"
    return line


class Console:
    """Rich live table on a terminal, periodic log lines otherwise."""

    def __init__(self, cfg: ConsoleConfig, title: str, out: IO[str] | None = None):
        self.cfg = cfg
        self.title = title
        self.out = out or sys.stdout
        self.interactive = self.out.isatty()
        self._live: Live | None = None
        self._last_line = 0.0
        if self.interactive:
            self._live = Live(console=RichConsole(file=self.out), refresh_per_second=max(1, round(1 / cfg.refresh_s)))
            self._live.start()
        else:
            print(title, file=self.out, flush=True)

    def update(self, snap: dict) -> None:
        if self._live is not None:
            self._live.update(render_table(snap, self.title))
        elif time.monotonic() - self._last_line >= self.cfg.log_every_s:
            self._last_line = time.monotonic()
            print(log_line(snap), file=self.out, flush=True)

    def close(self, snap: dict | None = None) -> None:
        if self._live is not None:
            if snap is not None:
                self._live.update(render_table(snap, self.title))
            self._live.stop()
            self._live = None
        elif snap is not None:
            print(log_line(snap), file=self.out, flush=True)


STATS_SUFFIX = ":stats"


def find_namespace(client, run: str | None) -> str:
    """The namespace of ``run``, or of the run whose stats stream moved last."""
    if run is not None:
        namespace = f"redux:{run}"
        if not client.exists(namespace + STATS_SUFFIX):
            raise LookupError(f"no run named {run!r} has published stats on this Redis")
        return namespace
    newest, best = None, ""
    for key in client.scan_iter(match="redux:*" + STATS_SUFFIX):
        key = key.decode() if isinstance(key, bytes) else key
        last = client.xinfo_stream(key).get("last-generated-id", b"0-0")
        last = last.decode() if isinstance(last, bytes) else last
        if tuple(map(int, last.split("-"))) > tuple(map(int, best.split("-") if best else (0, 0))):
            newest, best = key, last
    if newest is None:
        raise LookupError("no run has published stats on this Redis yet")
    return newest[: -len(STATS_SUFFIX)]


def attach(url: str, run: str | None, cfg: RunConfig, seconds: float | None, out: IO[str] | None = None) -> dict:
    """``redux console``: follow a running job until Ctrl-C or ``seconds``; returns the last snapshot."""
    client = connect(url, cfg.buffer.connect_timeout_s)
    namespace = find_namespace(client, run)
    buffer = RolloutBuffer(client, namespace, cfg.buffer, consumer="console")
    telemetry = StatsChannel(client, namespace)
    stats = RunStats()
    view = Console(cfg.console, f"redux console {namespace}", out)
    last_id, snap = "0-0", stats.snapshot(None)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            last_id, messages = telemetry.read(last_id, block_ms=int(cfg.console.refresh_s * 1000))
            for message in messages:
                stats.ingest(message)
            snap = stats.snapshot(buffer.stats())
            view.update(snap)
    except KeyboardInterrupt:
        pass
    finally:
        view.close(snap)
    return snap
