"""`redux run` end to end on real Ray, Redis and DeepSpeed, as a user runs it.

One run has a rollout actor SIGKILLed mid-run; a second run resumes the first
from its checkpoint against an external Redis into which a corrupted record is
injected. Both must finish with the figures the issue names.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from redux.buffer.redis_server import EmbeddedRedis
from redux.buffer.rollout_buffer import RolloutBuffer
from redux.config import BufferConfig

pytestmark = pytest.mark.e2e

REDUX = [sys.executable, "-m", "redux"]
SMALL = [
    "--set", "sim.episode_steps=40",
    "--set", "actors.rollout_steps=8",
    "--set", "learner.rollouts_per_step=2",
    "--set", "learner.publish_every=3",
    "--set", "learner.checkpoint_every=6",
]


def sampling_actors(driver_pid: int) -> list[psutil.Process]:
    """This job's rollout actor processes busy in ``sample`` (Ray titles a worker after its
    current task). The local cluster is started by the driver, so its workers descend from
    it; any other job on the machine is left alone."""
    found = []
    for proc in psutil.Process(driver_pid).children(recursive=True):
        try:
            if " ".join(proc.cmdline()).startswith("ray::RolloutActor.sample"):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    args = ["run", "configs/quickstart.yaml", "--set", f"runs_dir={runs}", "--set", "name=e2e",
            "--set", "learner.steps=60", *SMALL]
    proc = subprocess.Popen(REDUX + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        victims = wait_for(lambda: sampling_actors(proc.pid), 180, "a rollout actor in the middle of a rollout")
        os.kill(victims[0].pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=420)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    return runs / "e2e", out


def test_run_finishes_with_training_and_weight_sync(first_run):
    run_dir, out = first_run
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("actors", "env_steps", "env_steps_per_s", "rollouts_produced", "rollouts_consumed",
                "rollouts_dead_lettered", "rollouts_dropped_stale", "learner_steps", "weight_version_final",
                "min_actor_weight_version", "wall_s"):
        assert key in summary, key
    assert summary["actors"] == 2
    assert summary["rollouts_consumed"] > 0
    assert summary["learner_steps"] == 60
    assert summary["weight_version_final"] >= 2
    assert summary["min_actor_weight_version"] >= 1
    assert summary["rollouts_dead_lettered"] == 0
    assert (run_dir / "config.yaml").is_file()
    assert list(run_dir.glob("checkpoints/step*/policy.weights")), "checkpoints carry weights a policy can load"
    assert any((run_dir / "tb").rglob("events.out.tfevents*"))
    # not a terminal: the console printed plain log lines
    assert "steps/s10=" in out


def test_killed_actor_restarts_with_current_weights(first_run):
    run_dir, _ = first_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["actor_restarts"] >= 1
    checks = summary["restart_checks"]
    assert checks, "no record came from a restarted actor"
    for check in checks:
        assert check["loaded_version"] == check["current_version"], check


def test_resume_continues_steps_and_version_and_survives_a_corrupt_record(first_run, tmp_path):
    run_dir, _ = first_run
    before = json.loads((run_dir / "summary.json").read_text())
    with EmbeddedRedis(tmp_path / "redis", append_only=False) as redis:
        # the resumed run reads this stream; the garbage entry must be dead-lettered, not crash it
        RolloutBuffer.from_url(redis.url, f"redux:{run_dir.name}", BufferConfig()).put_raw(b"\x00not a record")
        args = ["run", "--resume", str(run_dir), "--set", "learner.steps=66", "--set", f"buffer.redis_url={redis.url}"]
        done = subprocess.run(REDUX + args, capture_output=True, text=True, timeout=420)
        assert done.returncode == 0, done.stdout + done.stderr
    after = json.loads((run_dir / "summary.json").read_text())
    assert after["learner_steps"] == 66
    assert after["weight_version_final"] == before["weight_version_final"] + 2
    assert after["rollouts_dead_lettered"] == 1
    assert after["rollouts_consumed"] > 0
    # the actors drive on to the scenes after those the checkpoint was trained on
    assert before["first_episode"] == 0 and after["first_episode"] >= 1


def test_unreachable_redis_is_a_clear_error_naming_the_url(tmp_path):
    started = time.monotonic()
    done = subprocess.run(
        REDUX + ["run", "configs/quickstart.yaml", "--set", f"runs_dir={tmp_path}",
                 "--set", "buffer.redis_url=redis://:secret@127.0.0.1:9/0"],
        capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert "127.0.0.1:9" in done.stderr and "secret" not in done.stderr
    assert elapsed < 15, f"took {elapsed:.1f} s including interpreter start-up"


def test_mistyped_key_names_key_and_file():
    done = subprocess.run(REDUX + ["run", "configs/quickstart.yaml", "--set", "learner.stpes=3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "learner.stpes" in done.stderr and "configs/quickstart.yaml" in done.stderr
