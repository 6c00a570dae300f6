import io
import time

from redux.buffer.rollout_buffer import BufferStats
from redux.config import ConsoleConfig
from redux.console import Console, RunStats, log_line, render_table


def fed_stats() -> RunStats:
    stats = RunStats()
    now = time.time()
    stats.started = now - 30  # start-up before the first rollout does not count in the rates
    # one actor report a second for the last 20 s (the first rollout began 21 s ago), 100 steps each
    for i in range(21):
        stats.ingest({"source": "actor", "actor": i % 2, "version": 3, "env_steps": 100, "rollouts": 2,
                      "sample_s": 1.0, "time": now - 20 + i})
    stats.ingest({"source": "learner", "step": 12, "steps_total": 20, "version": 4, "loss": 0.5, "steps_per_s": 2.0,
                  "staleness_mean": 0.5, "staleness_max": 1, "publish_ms": 3.0, "time": now})
    stats.ingest({"source": "driver", "restarts": {"0": 1, "1": 0}, "publish_to_loaded_ms": 40.0, "time": now})
    return stats


def buffer_stats() -> BufferStats:
    return BufferStats(depth=3, pending=1, produced=20, consumed=15, acked=14, dead_lettered=1, dropped_stale=2, dropped_staleness=5, reclaimed=0)


def test_windowed_and_overall_rates():
    snap = fed_stats().snapshot(buffer_stats())
    assert abs(snap["env_steps_per_s_10s"] - 100.0) < 1.0  # 1000 steps over 10 s
    assert abs(snap["env_steps_per_s"] - 100.0) < 1.0  # 2100 steps over 21 s
    assert abs(snap["rollouts_per_s_10s"] - 2.0) < 0.1
    assert snap["actor_versions"] == {0: 3, 1: 3}
    assert snap["actor_restarts"] == {0: 1, 1: 0}
    assert snap["loss"] == 0.5 and snap["publish_to_loaded_ms"] == 40.0


def test_old_reports_leave_the_window():
    stats = RunStats()
    now = time.time()
    stats.ingest({"source": "actor", "actor": 0, "version": 1, "env_steps": 500, "rollouts": 1, "time": now - 60})
    stats.ingest({"source": "actor", "actor": 0, "version": 1, "env_steps": 500, "rollouts": 1, "time": now - 30})
    assert stats.snapshot(None)["env_steps_per_s_10s"] == 0.0


def test_plain_log_lines_when_not_a_terminal():
    out = io.StringIO()
    console = Console(ConsoleConfig(log_every_s=0.01), "t", out)
    assert not console.interactive
    snap = fed_stats().snapshot(buffer_stats())
    console.update(snap)
    console.close(snap)
    text = out.getvalue()
    assert text.startswith("t\n") and text.count("\n") == 3
    for figure in ("steps/s10=", "depth=3", "produced=20", "consumed=15", "acked=14", "dead=1", "stale=2",
                   "staleness=0.5/1", "loss=0.5", "step=12/20", "version=4", "actors=[0:v3,1:v3]", "restarts=1", "publish_ms=3"):
        assert figure in text, figure


def test_table_renders_every_figure():
    from rich.console import Console as RichConsole

    out = io.StringIO()
    RichConsole(file=out, width=160).print(render_table(fed_stats().snapshot(buffer_stats()), "title"))
    text = out.getvalue()
    assert "12/20" in text
    for label in ("env steps/s (10 s)", "buffer depth", "dead-lettered", "staleness max", "learner steps/s",
                  "publish→all loaded ms", "actor versions"):
        assert label in text, label
    assert log_line(fed_stats().snapshot(buffer_stats()))


def test_served_versions_tokens_and_replicas_are_shown():
    from rich.console import Console as RichConsole

    stats = fed_stats()
    now = time.time()
    stats.ingest({"source": "actor", "actor": 0, "version": 4, "served_version": 4, "env_steps": 10, "rollouts": 1,
                  "reasoning_tokens": 2100, "time": now})
    stats.ingest({"source": "driver", "restarts": {}, "publish_to_replicas_loaded_ms": 12.0, "time": now})
    stats.ingest({"source": "replica", "replica": 0, "served_version": 4, "incarnation": 2, "mean_batch": 6.5,
                  "time": now})
    snap = stats.snapshot(buffer_stats())
    assert snap["served_versions"] == {"a0": 4, "r0": 4}
    assert snap["replica_restarts"] == 1 and snap["replica_mean_batch"] == {0: 6.5}
    assert abs(snap["reasoning_tokens_per_s"] - 100.0) < 1.0  # 2100 tokens over the 21 s since the first rollout
    line = log_line(snap)
    assert "served=[a0:v4,r0:v4]" in line and "tokens/s=" in line and "replicas_loaded_ms=12" in line
    out = io.StringIO()
    RichConsole(file=out, width=160).print(render_table(snap, "title"))
    for label in ("served versions", "reasoning tokens/s", "replica mean batch", "r0:6.5", "publish→replicas loaded ms"):
        assert label in out.getvalue(), label
    # a run without served engines shows none of it
    assert "served=" not in log_line(fed_stats().snapshot(buffer_stats()))
