"""EmbeddedRedis and connect() against the real redis-server binary."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redux.buffer import EmbeddedRedis, EmbeddedRedisError, RedisUnreachable, connect, redact

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedRedis:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), append_only=False) as embedded:
        yield embedded


def is_running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_running(pid)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_server_is_private_to_loopback_and_password(server: EmbeddedRedis) -> None:
    assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
    client = connect(server.url, timeout_s=5)
    assert client.ping()
    config = client.config_get("*")
    assert config["bind"] == "127.0.0.1"
    assert config["protected-mode"] == "yes"
    assert config["save"] == "" and config["appendonly"] == "no"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0)).ping()
    # The password travels in a private config file, never on the command line.
    assert server.password not in " ".join(psutil.Process(server.pid).cmdline())
    assert (server.workdir / "redis.conf").stat().st_mode & 0o077 == 0


def test_close_leaves_no_process_and_is_idempotent(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, append_only=False).start()
    pid = embedded.pid
    assert is_running(pid)
    embedded.close()
    embedded.close()
    assert not is_running(pid)


def test_killed_parent_takes_its_server_along(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from redux.buffer import EmbeddedRedis\n"
        "print(EmbeddedRedis(sys.argv[1], append_only=False).start().pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    try:
        assert is_running(pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_until_gone(pid, timeout_s=5), "redis-server outlived its SIGKILLed parent"
    finally:
        if is_running(pid):
            os.kill(pid, signal.SIGKILL)


def test_append_only_data_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, append_only=True) as embedded:
        connect(embedded.url, timeout_s=5).set("weight_version", 7)
    assert (tmp_path / "appendonlydir").is_dir()
    with EmbeddedRedis(tmp_path, append_only=True) as embedded:
        assert connect(embedded.url, timeout_s=5).get("weight_version") == b"7"


def test_without_append_only_a_restart_starts_empty(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, append_only=False) as embedded:
        connect(embedded.url, timeout_s=5).set("weight_version", 7)
    with EmbeddedRedis(tmp_path, append_only=False) as embedded:
        assert connect(embedded.url, timeout_s=5).get("weight_version") is None


def test_a_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    (tmp_path / "appendonlydir").write_text("a file where redis-server wants its AOF directory")
    with pytest.raises(EmbeddedRedisError, match="(?s)exited with code 1.*append-only dir appendonlydir"):
        EmbeddedRedis(tmp_path, append_only=True).start()


def test_connect_to_an_unreachable_url_fails_in_time_naming_it() -> None:
    url = f"redis://:secret-pw@127.0.0.1:{unused_port()}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnreachable) as failure:
        connect(url, timeout_s=1.0)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 10
    assert redact(url) in str(failure.value) and "secret-pw" not in str(failure.value)


def test_connect_to_a_server_that_never_answers_keeps_to_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(RedisUnreachable, match="Timeout"):
            connect(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout_s=2.0)
        assert time.monotonic() - started < 3.0


def test_connect_to_something_that_is_not_redis_fails_cleanly() -> None:
    with socket.socket() as http:
        http.bind(("127.0.0.1", 0))
        http.listen()
        answering = threading.Thread(target=answer_like_http, args=(http,), daemon=True)
        answering.start()
        with pytest.raises(RedisUnreachable):
            connect(f"redis://127.0.0.1:{http.getsockname()[1]}/0", timeout_s=1.0)


def answer_like_http(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # the test closed the listener
            return
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")


def test_connect_with_a_wrong_password_fails_at_once(server: EmbeddedRedis) -> None:
    url = f"redis://:wrong-pw@127.0.0.1:{server.port}/0"
    started = time.monotonic()
    with pytest.raises(RedisUnreachable, match="rejected the credentials") as failure:
        connect(url, timeout_s=5)
    assert time.monotonic() - started < 2
    assert "wrong-pw" not in str(failure.value)


def test_connect_rejects_a_url_that_is_not_redis() -> None:
    with pytest.raises(ValueError, match="scheme") as failure:
        connect("http://:secret-pw@127.0.0.1:80/0", timeout_s=1)
    assert "secret-pw" not in str(failure.value)


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://user:p%40ss@host:6380/1", "rediss://user:***@host:6380/1"),
        ("unix://:pw@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://host:6379/0?password=pw&db=1", "redis://host:6379/0?password=***&db=1"),
        ("redis://user@host:6379/0", "redis://user@host:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_redact_hides_passwords_only(url: str, redacted: str) -> None:
    assert redact(url) == redacted
